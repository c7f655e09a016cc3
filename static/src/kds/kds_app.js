/**
 * The community kitchen display: a station's orders in the kitchen, oldest
 * first, each with the tickets the station got (new order, changes,
 * cancellations) and its age, coloured by the station's minutes (late,
 * very late); the all-day count per product; bump (ready) and recall.
 *
 * The document comes from GET /stations/{id}/tickets; the display follows
 * the station's and its point of sale's rooms from the document's last_seq
 * and reads the document again when an event says something changed (a
 * ticket, an order's state), so that a reconnect neither misses nor
 * repeats a ticket: tickets and orders are keyed by id.
 */
import { Component, onMounted, onWillUnmount, useState, whenReady } from "@odoo/owl";
import { mountComponent } from "@web/env";
import { session } from "@web/session";
import { ApiError, backoffDelay, Credentials, KdsClient } from "./kds_client";

// Events of the orders on the display (or just bumped) after which the
// document is read again; a new ticket of the station always.
const ORDER_EVENTS = new Set([
    "order.state_changed",
    "order.updated",
    "line.updated",
    "kitchen.order_ready",
    "print.failed",
]);
const REFRESH_DELAY = 150; // ms: the events of one commit are read once
const REFRESH_MAX_WAIT = 1000; // ms: a steady stream of events still reads
const CLOCK_INTERVAL = 15000; // ms between two repaints of the ages

export class KitchenDisplay extends Component {
    static template = "point_of_sale_api.KitchenDisplay";
    static props = [];

    setup() {
        this.info = session.pos_api_kds || {};
        this.credentials = new Credentials({
            api: this.info.api,
            userTokens: this.info.user_tokens,
            configId: this.info.config_id,
        });
        this.state = useState({
            phase: "loading", // loading | choose | display | token | error
            online: false,
            error: "",
            stations: [],
            document: null,
            now: Date.now(),
            busy: {},
        });
        this.client = null;
        this.refreshTimer = null;
        this.refreshSince = null;
        this.reads = 0; // the latest read wins, whatever order the answers come in
        this.startAttempt = 0;
        onMounted(() => this.start());
        onWillUnmount(() => {
            this.client?.stop();
            clearInterval(this.clock);
            clearTimeout(this.refreshTimer);
        });
    }

    // ------------------------------------------------------------------
    async start() {
        if (!this.credentials.known) {
            this.state.phase = "token";
            return;
        }
        if (!this.clock) {
            this.clock = setInterval(() => (this.state.now = Date.now()), CLOCK_INTERVAL);
        }
        try {
            if (!this.info.station_id) {
                const config = await this.credentials.call("GET", "/config");
                this.state.stations = config.stations;
                this.state.phase = "choose";
                return;
            }
            await this.refresh();
            this.follow();
        } catch (error) {
            this.fail(error);
            if (!(error instanceof ApiError)) {
                // The server is not up yet (a power cut): try again.
                setTimeout(() => this.start(), backoffDelay(this.startAttempt++));
            }
        }
    }

    follow() {
        const station = this.state.document.station;
        this.client = new KdsClient({
            credentials: this.credentials,
            rooms: [station.room, `config:${this.state.document.config_id}`],
            onEvents: (events) => {
                if (events.some((event) => this.concerns(event))) {
                    this.scheduleRefresh();
                }
            },
            onResync: () => this.scheduleRefresh(),
            onAuthLost: (error) => this.fail(error),
            onStatus: (online) => {
                const back = online && !this.state.online;
                this.state.online = online;
                if (back) {
                    // Whatever the socket replays, the document is the truth.
                    this.scheduleRefresh();
                }
            },
        });
        this.client.start(this.state.document.last_seq);
    }

    /** Whether an event changes what the display shows. */
    concerns(event) {
        if (event.type === "kitchen.ticket") {
            return true;
        }
        if (!ORDER_EVENTS.has(event.type)) {
            return false;
        }
        const payload = event.payload || {};
        const orderId = event.type === "line.updated" ? payload.order_id : payload.id;
        const document = this.state.document;
        const shown = [...document.orders, ...document.recent].some(
            (order) => order.order_id === orderId
        );
        return shown || payload.state === "preparing";
    }

    scheduleRefresh() {
        const now = Date.now();
        this.refreshSince = this.refreshSince ?? now;
        clearTimeout(this.refreshTimer);
        const delay = Math.min(REFRESH_DELAY, Math.max(0, this.refreshSince + REFRESH_MAX_WAIT - now));
        this.refreshTimer = setTimeout(() => {
            this.refreshSince = null;
            this.refresh().catch((e) => this.fail(e));
        }, delay);
    }

    async refresh() {
        const read = ++this.reads;
        const document = await this.credentials.call(
            "GET",
            `/stations/${this.info.station_id}/tickets`
        );
        if (read !== this.reads) {
            return; // a later read is on its way
        }
        this.state.document = document;
        this.state.phase = "display";
        this.state.now = Date.now();
    }

    fail(error) {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
            this.state.phase = this.info.user_tokens ? "error" : "token";
        } else if (this.state.phase !== "display") {
            this.state.phase = "error";
        }
        this.state.error = error.message || String(error);
    }

    // ------------------------------------------------------------------
    async bump(order) {
        await this.act(order.order_id, `/orders/${order.order_id}/ready`);
    }

    async recall(order) {
        await this.act(order.order_id, `/orders/${order.order_id}/recall`);
    }

    async act(orderId, path) {
        if (this.state.busy[orderId]) {
            return;
        }
        this.state.busy[orderId] = true;
        try {
            await this.credentials.call("POST", path, {});
            await this.refresh();
        } catch (error) {
            this.state.error = error.message || String(error);
        } finally {
            delete this.state.busy[orderId];
        }
    }

    // ------------------------------------------------------------------
    minutes(order) {
        const sent = order.kitchen_started_at || order.tickets[0]?.created_at;
        if (!sent) {
            return 0;
        }
        const at = Date.parse(sent.endsWith("Z") || sent.includes("+") ? sent : `${sent}Z`);
        return Math.max(0, Math.floor((this.state.now - at) / 60000));
    }

    urgency(order) {
        const station = this.state.document.station;
        const minutes = this.minutes(order);
        if (minutes >= station.late_minutes) {
            return "late";
        }
        return minutes >= station.warn_minutes ? "warn" : "ok";
    }

    quantity(ticket, line) {
        const qty = Number(line.qty);
        const text = Number.isInteger(qty) ? String(qty) : qty.toFixed(2);
        return ticket.kind === "delta" && !line.note_changed && qty > 0 ? `+${text}` : text;
    }

    stationUrl(station) {
        return `/pos_api/kds/${station.id}${window.location.search}`;
    }
}

whenReady(() => mountComponent(KitchenDisplay, document.body));
