/**
 * The kitchen display's link to the server. It uses the device API with a
 * kitchen device's access token, and the device WebSocket (same origin,
 * /pos_api/v1/ws) for live events. Where no WebSocket is served (the HTTP
 * workers' port) it long-polls /pos_api/v1/events instead. It reconnects
 * with jittered exponential backoff, resumes after the last seq it saw and
 * says when it is offline.
 *
 * Tokens: a kitchen device's pair, given once in the address's fragment
 * (#access=...&refresh=...) and kept in the browser, rotated through
 * /auth/refresh; or, for a logged-in user, short access tokens from
 * /pos_api/kds/token.
 */
import { rpc } from "@web/core/network/rpc";

export const BACKOFF = { base: 500, cap: 10000, jitter: 0.5 };
const STORAGE_KEY = "point_of_sale_api.kds.tokens";
const RENEW_MARGIN = 60; // seconds before expiry when a token is renewed
const LONGPOLL_TIMEOUT = 25; // seconds
const LONGPOLL_PAUSE = 2000; // ms between two polls that answered at once

/** Milliseconds before reconnect attempt ``attempt`` (0-based): doubling from
 * ``base`` up to ``cap``, less a random part of up to ``jitter`` of it. */
export function backoffDelay(attempt, { base, cap, jitter } = BACKOFF) {
    const delay = Math.min(cap, base * 2 ** attempt);
    return Math.round(delay * (1 - jitter * Math.random()));
}

function expiresAt(token) {
    try {
        const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
        return JSON.parse(atob(payload)).exp || 0;
    } catch {
        return 0;
    }
}

export class ApiError extends Error {
    constructor(status, body) {
        super(body?.error?.message || `HTTP ${status}`);
        this.status = status;
        this.code = body?.error?.code || "";
    }
}

export class Credentials {
    constructor({ api, userTokens, configId }) {
        this.api = api;
        this.userTokens = userTokens;
        this.configId = configId;
        this.tokens = this.load();
        this.renewing = null;
    }
    load() {
        if (this.userTokens) {
            return {}; // the session's own, asked for when needed
        }
        const fragment = new URLSearchParams(window.location.hash.slice(1));
        if (fragment.get("access")) {
            const tokens = { access: fragment.get("access"), refresh: fragment.get("refresh") };
            this.save(tokens);
            // Out of the address bar and the history.
            window.history.replaceState(null, "", window.location.pathname + window.location.search);
            return tokens;
        }
        try {
            return JSON.parse(window.localStorage.getItem(STORAGE_KEY)) || {};
        } catch {
            return {};
        }
    }
    save(tokens) {
        this.tokens = tokens;
        if (!this.userTokens) {
            window.localStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
        }
    }
    get known() {
        return Boolean(this.userTokens || this.tokens.access || this.tokens.refresh);
    }
    /** A valid access token, renewed when it is about to expire. */
    async access() {
        const now = Date.now() / 1000;
        if (this.tokens.access && expiresAt(this.tokens.access) - RENEW_MARGIN > now) {
            return this.tokens.access;
        }
        return this.renew();
    }
    renew() {
        if (!this.renewing) {
            this.renewing = this._renew().finally(() => {
                this.renewing = null;
            });
        }
        return this.renewing;
    }
    async _renew() {
        if (this.userTokens) {
            const result = await rpc("/pos_api/kds/token", { config_id: this.configId });
            if (result.error) {
                throw new ApiError(result.status, result);
            }
            this.save({ access: result.access_token });
            return result.access_token;
        }
        // Another tab of the same device may have rotated the pair already.
        const stored = this.load();
        if (stored.access && expiresAt(stored.access) - RENEW_MARGIN > Date.now() / 1000) {
            this.tokens = stored;
            return stored.access;
        }
        this.tokens = { ...this.tokens, ...stored };
        if (!this.tokens.refresh) {
            throw new ApiError(401, { error: { code: "missing_token" } });
        }
        const response = await fetch(`${this.api}/auth/refresh`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ refresh_token: this.tokens.refresh }),
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) {
            if (response.status === 401 || response.status === 403) {
                this.save({});
            }
            throw new ApiError(response.status, body);
        }
        this.save({ access: body.access_token, refresh: body.refresh_token });
        return body.access_token;
    }

    /** A JSON call of the device API; a 401 renews the token once. */
    async call(method, path, body) {
        for (let retry = 0; ; retry++) {
            const token = await this.access();
            const response = await fetch(`${this.api}${path}`, {
                method,
                headers: {
                    Authorization: `Bearer ${token}`,
                    ...(body ? { "Content-Type": "application/json" } : {}),
                },
                body: body ? JSON.stringify(body) : undefined,
            });
            const data = await response.json().catch(() => ({}));
            if (response.status === 401 && retry === 0) {
                this.tokens.access = null;
                continue;
            }
            if (!response.ok) {
                throw new ApiError(response.status, data);
            }
            return data;
        }
    }
}

export class KdsClient {
    /**
     * @param {Object} options
     * @param {Credentials} options.credentials
     * @param {string[]} options.rooms
     * @param {(events: Object[]) => void} options.onEvents
     * @param {() => void} options.onResync the display must read its document again
     * @param {(online: boolean) => void} options.onStatus
     * @param {(error: ApiError) => void} [options.onAuthLost] the tokens no
     *     longer hold: the client has stopped
     */
    constructor({ credentials, rooms, onEvents, onResync, onStatus, onAuthLost }) {
        this.credentials = credentials;
        this.api = credentials.api;
        this.rooms = rooms;
        this.onEvents = onEvents;
        this.onResync = onResync;
        this.onStatus = onStatus;
        this.onAuthLost = onAuthLost || (() => {});
        this.lastSeq = null;
        this.attempt = 0;
        this.stopped = false;
        this.socket = null;
        this.longPoll = false;
        this.timer = null;
    }

    /** Follow the rooms from ``after`` (the document's last_seq). */
    start(after) {
        this.seen(after);
        this.connect();
    }

    stop() {
        this.stopped = true;
        clearTimeout(this.timer);
        if (this.socket) {
            this.socket.close(1000);
        }
    }

    seen(seq) {
        if (typeof seq === "number" && (this.lastSeq === null || seq > this.lastSeq)) {
            this.lastSeq = seq;
        }
    }

    /** Events not seen yet, in seq order (a resumed stream may repeat some). */
    fresh(events) {
        const result = [];
        for (const event of events) {
            if (this.lastSeq === null || event.seq > this.lastSeq) {
                this.seen(event.seq);
                result.push(event);
            }
        }
        return result;
    }

    deliver(events) {
        const fresh = this.fresh(events);
        if (fresh.length) {
            this.onEvents(fresh);
        }
    }

    /** Whether ``error`` says the tokens no longer hold (then the client
     * stops and tells its owner: retrying would not help). */
    lostAuth(error) {
        if (!(error instanceof ApiError) || ![401, 403].includes(error.status)) {
            return false;
        }
        this.stop();
        this.onAuthLost(error);
        return true;
    }

    retry() {
        if (this.stopped) {
            return;
        }
        this.onStatus(false);
        const delay = backoffDelay(this.attempt++);
        this.timer = setTimeout(() => this.connect(), delay);
    }

    connect() {
        if (this.stopped) {
            return;
        }
        if (this.longPoll) {
            this.poll();
        } else {
            this.openSocket();
        }
    }

    openSocket() {
        const scheme = window.location.protocol === "https:" ? "wss" : "ws";
        const socket = new WebSocket(`${scheme}://${window.location.host}${this.api}/ws`);
        this.socket = socket;
        let opened = false;
        let subscribed = false;
        socket.onopen = async () => {
            opened = true;
            try {
                socket.send(JSON.stringify({ type: "auth", token: await this.credentials.access() }));
            } catch (error) {
                if (!this.lostAuth(error)) {
                    socket.close(4001);
                }
            }
        };
        socket.onmessage = (message) => {
            let data;
            try {
                data = JSON.parse(message.data);
            } catch {
                return;
            }
            if (data.type === "authenticated") {
                socket.send(
                    JSON.stringify({ type: "subscribe", rooms: this.rooms, after: this.lastSeq })
                );
            } else if (data.type === "subscribed") {
                subscribed = true;
                this.attempt = 0;
                this.onStatus(true);
                if (data.resync) {
                    this.onResync();
                }
            } else if (typeof data.seq === "number") {
                this.deliver([data]);
            }
        };
        socket.onclose = (event) => {
            if (this.socket === socket) {
                this.socket = null;
            }
            if (this.stopped) {
                return;
            }
            if (event.code === 4001) {
                this.credentials.tokens.access = null; // renewed on the next attempt
            } else if (event.code === 4009) {
                this.onResync();
            }
            if (opened || subscribed) {
                this.retry();
            } else {
                this.checkServed().finally(() => this.retry());
            }
        };
    }

    /** A WebSocket that never opened: when the server answers anyway, this
     * port serves no WebSocket (the HTTP workers'), and the display
     * long-polls; otherwise the server is away and the socket is tried
     * again. */
    async checkServed() {
        try {
            const response = await fetch(`${this.api}/health`, { cache: "no-store" });
            if (response.ok) {
                this.longPoll = true;
            }
        } catch {
            // offline: try the socket again
        }
    }

    async poll() {
        try {
            const query = new URLSearchParams({
                rooms: this.rooms.join(","),
                timeout: String(LONGPOLL_TIMEOUT),
            });
            if (this.lastSeq !== null) {
                query.set("after", String(this.lastSeq));
            }
            const start = Date.now();
            const result = await this.credentials.call("GET", `/events?${query}`);
            this.attempt = 0;
            this.onStatus(true);
            if (result.resync) {
                this.seen(result.last_seq);
                this.onResync();
            } else {
                this.deliver(result.events || []);
                this.seen(result.last_seq);
            }
            const pause = Date.now() - start < 1000 ? LONGPOLL_PAUSE : 0;
            this.timer = setTimeout(() => this.connect(), pause);
        } catch (error) {
            if (!this.lostAuth(error)) {
                this.retry();
            }
        }
    }
}
