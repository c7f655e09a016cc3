/**
 * Each order's kitchen state in Odoo's POS UI: on the floor plan (each
 * table's most urgent order: ready, then preparing, then served) and in the
 * order list, with the minutes since the order reached that state. The
 * state comes from the order's kitchen timestamps (kitchen_started_at,
 * kitchen_ready_at, served_at), which the addon's events keep current: an
 * event about an order makes the UI read it again (../overrides/pos_store.js).
 */
import { onWillUnmount, useState } from "@odoo/owl";
import { deserializeDateTime } from "@web/core/l10n/dates";
import { _t } from "@web/core/l10n/translation";
import { patch } from "@web/core/utils/patch";
import { FloorScreen } from "@pos_restaurant/app/floor_screen/floor_screen";
import { TicketScreen } from "@point_of_sale/app/screens/ticket_screen/ticket_screen";

const { DateTime } = luxon;
const REFRESH_MS = 30000;
// Latest step first; ``rank``: which order of a table the floor plan shows.
const STEPS = [
    { field: "served_at", state: "served", rank: 1, label: () => _t("Served") },
    { field: "kitchen_ready_at", state: "ready", rank: 3, label: () => _t("Ready") },
    { field: "kitchen_started_at", state: "preparing", rank: 2, label: () => _t("Preparing") },
];

export function kitchenStatus(order, now = DateTime.now()) {
    if (!order || order.state === "cancel" || order.api_state === "cancel") {
        return null;
    }
    for (const step of STEPS) {
        if (order[step.field]) {
            const since = deserializeDateTime(order[step.field]);
            const minutes = Math.max(0, Math.floor(now.diff(since, "minutes").minutes));
            return {
                state: step.state,
                rank: step.rank,
                minutes,
                label: _t("%(state)s %(minutes)s min", { state: step.label(), minutes }),
            };
        }
    }
    return null;
}

function useClock() {
    const clock = useState({ now: DateTime.now() });
    const timer = setInterval(() => (clock.now = DateTime.now()), REFRESH_MS);
    onWillUnmount(() => clearInterval(timer));
    return clock;
}

patch(FloorScreen.prototype, {
    setup() {
        super.setup(...arguments);
        this.posApiClock = useClock();
    },
    posApiTableKitchen(table) {
        const now = this.posApiClock.now;
        let shown = null;
        for (const order of this.pos.models["pos.order"].filter(
            (o) => o.table_id?.id === table.id && !o.finalized
        )) {
            const status = kitchenStatus(order, now);
            if (status && (!shown || status.rank > shown.rank)) {
                shown = status;
            }
        }
        return shown;
    },
});

patch(TicketScreen.prototype, {
    setup() {
        super.setup(...arguments);
        this.posApiClock = useClock();
    },
    getStatus(order) {
        const status = super.getStatus(...arguments);
        const kitchen = kitchenStatus(order, this.posApiClock.now);
        return kitchen ? `${status} · ${kitchen.label}` : status;
    },
});
