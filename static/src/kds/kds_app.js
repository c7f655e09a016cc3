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
import { ApiError, Credentials, KdsClient } from "./kds_client";

// Events after which the document is read again.
const REFRESH_EVENTS = new Set([
    "kitchen.ticket",
    "order.state_changed",
    "order.updated",
    "line.updated",
    "kitchen.order_ready",
    "print.failed",
]);
const REFRESH_DELAY = 150; // ms: the events of one commit are read once
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
        this.clock = setInterval(() => (this.state.now = Date.now()), CLOCK_INTERVAL);
        try {
            if (!this.info.station_id) {
                const config = await this.api().call("GET", "/config");
                this.state.stations = config.stations;
                this.state.phase = "choose";
                return;
            }
            await this.refresh();
            this.follow();
        } catch (error) {
            this.fail(error);
        }
    }

    /** A client for calls before the live one exists. */
    api() {
        return (
            this.client ||
            new KdsClient({
                credentials: this.credentials,
                rooms: [],
                onEvents: () => {},
                onResync: () => {},
                onStatus: () => {},
            })
        );
    }

    follow() {
        const station = this.state.document.station;
        this.client = new KdsClient({
            credentials: this.credentials,
            rooms: [station.room, `config:${this.state.document.config_id}`],
            onEvents: (events) => {
                if (events.some((event) => REFRESH_EVENTS.has(event.type))) {
                    this.scheduleRefresh();
                }
            },
            onResync: () => this.scheduleRefresh(),
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

    scheduleRefresh() {
        clearTimeout(this.refreshTimer);
        this.refreshTimer = setTimeout(() => this.refresh().catch((e) => this.fail(e)), REFRESH_DELAY);
    }

    async refresh() {
        const document = await this.api().call(
            "GET",
            `/stations/${this.info.station_id}/tickets`
        );
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
            await this.api().call("POST", path, {});
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
