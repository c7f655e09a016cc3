/**
 * The sync log's events reach the POS UI on Odoo's bus, on the config's
 * channel, as POS_API_EVENT notifications carrying the device envelope
 * ({seq, type, room, at, payload}). On an event about orders the UI reads
 * those orders from the server, so that an order a waiter device created or
 * changed shows up without a reload. Orders with local changes not yet
 * synced are left alone: the UI's own next sync wins, as in Odoo.
 */
import { patch } from "@web/core/utils/patch";
import { PosStore } from "@point_of_sale/app/store/pos_store";

const ORDER_EVENTS = new Set([
    "order.created",
    "order.updated",
    "order.state_changed",
    "line.updated",
    "payment.processed",
    "kitchen.order_ready",
]);

patch(PosStore.prototype, {
    async afterProcessServerData() {
        this.posApiOrdersToRead = new Set();
        this.posApiReading = null;
        this.onNotified("POS_API_EVENT", (envelope) => this.ws_posApiEvent(envelope));
        return await super.afterProcessServerData(...arguments);
    },
    /** The order ids an event is about, for the orders to read. */
    posApiEventOrderIds(envelope) {
        const payload = envelope.payload || {};
        if (envelope.type === "table.updated") {
            return payload.order_ids || [];
        }
        if (!ORDER_EVENTS.has(envelope.type) || payload.deleted) {
            return [];
        }
        return [envelope.type === "line.updated" ? payload.order_id : payload.id];
    },
    ws_posApiEvent(envelope) {
        for (const id of this.posApiEventOrderIds(envelope)) {
            if (typeof id === "number" && !this.pendingOrder.write.has(id)) {
                this.posApiOrdersToRead.add(id);
            }
        }
        if (this.posApiOrdersToRead.size && !this.posApiReading) {
            this.posApiReading = this.posApiReadOrders();
        }
        return this.posApiReading;
    },
    /** One read at a time: the events of one change (an order and its
     * table) arrive together and are read together. */
    async posApiReadOrders() {
        try {
            // Let the other notifications of the same batch arrive.
            await Promise.resolve();
            while (this.posApiOrdersToRead.size) {
                const ids = [...this.posApiOrdersToRead];
                this.posApiOrdersToRead.clear();
                await this.data.read("pos.order", ids);
            }
        } finally {
            this.posApiReading = null;
        }
    },
});
