/**
 * The server prints what the POS UI's Order button sends: the change of an
 * order's last_order_preparation_change, carried by sync_from_ui. A split
 * bill moves lines the kitchen already has to another order; the original
 * order then has fewer of them without anything being cancelled. So the
 * split records the moved quantities as the kitchen's state and marks that
 * state "posApiNoTicket" (pos_core/kitchen_changes.py: NO_TICKET): the
 * server records it without printing. The next Order clears the mark.
 */
import { patch } from "@web/core/utils/patch";
import { PosOrder } from "@point_of_sale/app/models/pos_order";
import { SplitBillScreen } from "@pos_restaurant/app/split_bill_screen/split_bill_screen";

const NO_TICKET = "posApiNoTicket";

patch(PosOrder.prototype, {
    updateLastOrderChange() {
        delete this.last_order_preparation_change[NO_TICKET];
        return super.updateLastOrderChange(...arguments);
    },
});

patch(SplitBillScreen.prototype, {
    async createSplittedOrder() {
        const original = this.currentOrder;
        const sentBefore = Object.entries(original.last_order_preparation_change.lines).map(
            ([key, entry]) => [key, { ...entry }]
        );
        await super.createSplittedOrder(...arguments);
        // What the kitchen had, less what moved to the new order. (With
        // Odoo order printers too, Odoo's split marks every line as sent,
        // lines never sent included: they would never print.)
        const state = original.last_order_preparation_change;
        const quantities = new Map(original.lines.map((line) => [line.uuid, line.get_quantity()]));
        let moved = false;
        state.lines = {};
        for (const [key, entry] of sentBefore) {
            const quantity = Math.min(quantities.get(entry.uuid) || 0, entry.quantity);
            if (quantity < entry.quantity) {
                moved = true;
            }
            if (quantity > 0) {
                state.lines[key] = { ...entry, quantity };
            }
        }
        if (moved) {
            state[NO_TICKET] = true;
        }
    },
});
