/**
 * The kitchen's state of each order, live in Odoo's POS UI: the cashier has
 * the floor plan open, table 4's order is in the kitchen (the test sent it
 * through the device API); the kitchen device bumps it (this tour calls the
 * API with the kitchen token the test left in the parameter
 * point_of_sale_api.tour_kitchen_request), and the table shows it ready
 * without a reload; the order list says so too.
 *
 * Started by tests/test_kitchen_status_tour.py, which relays the bus
 * notifications to the browser's websocket.
 */
import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as FloorScreen from "@pos_restaurant/../tests/tours/utils/floor_screen_util";
import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";

const TABLE = "4";

function tableKitchenIs(state) {
    return {
        content: `table ${TABLE} shows its order ${state}`,
        trigger: `.floor-map .table:has(.label:contains("${TABLE}")) .pos-api-kitchen-status[data-kitchen-state="${state}"]`,
    };
}

async function bumpAsKitchen() {
    const raw = await rpc("/web/dataset/call_kw/ir.config_parameter/get_param", {
        model: "ir.config_parameter",
        method: "get_param",
        args: ["point_of_sale_api.tour_kitchen_request"],
        kwargs: {},
    });
    const request = JSON.parse(raw);
    const response = await fetch(`/pos_api/v1/orders/${request.order_id}/ready`, {
        method: "POST",
        headers: {
            Authorization: `Bearer ${request.token}`,
            "Content-Type": "application/json",
        },
        body: "{}",
    });
    if (response.status !== 200) {
        throw new Error(`the device API answered ${response.status}: ${await response.text()}`);
    }
}

registry.category("web_tour.tours").add("point_of_sale_api_kitchen_status_tour", {
    steps: () =>
        [
            Chrome.startPoS(),
            FloorScreen.isShown(),
            FloorScreen.selectedFloorIs("Dining Room"),
            tableKitchenIs("preparing"),
            {
                content: "the kitchen bumps table 4's order through the API",
                trigger: ".floor-map",
                run: bumpAsKitchen,
            },
            tableKitchenIs("ready"),
            Chrome.clickMenuOption("Orders"),
            {
                content: "the order list shows the order ready",
                trigger: ".ticket-screen .order-row:contains('Ready')",
            },
            Chrome.endTour(),
        ].flat(),
});
