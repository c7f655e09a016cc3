/**
 * An order a waiter device creates through the device API shows up on an
 * open POS UI without a reload: the cashier has the floor plan of the demo
 * restaurant open; the device (this tour, with the token the test stored in
 * the parameter point_of_sale_api.tour_api_request) creates an order at
 * table 4; the table's badge then counts its 2 items not yet sent to the
 * kitchen (Odoo's floor screen counts changes, not orders), and opening it
 * shows its line.
 *
 * Started by tests/test_sync_log_tour.py, which relays the bus
 * notifications to the browser's websocket (Odoo's test cursor drops the
 * bus's post-commit NOTIFY).
 */
import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as FloorScreen from "@pos_restaurant/../tests/tours/utils/floor_screen_util";
import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";

const TABLE = "4"; // Dining Room
const PRODUCT = "Bruschetta al Pomodoro";

async function createOrderAsDevice() {
    const raw = await rpc("/web/dataset/call_kw/ir.config_parameter/get_param", {
        model: "ir.config_parameter",
        method: "get_param",
        args: ["point_of_sale_api.tour_api_request"],
        kwargs: {},
    });
    const request = JSON.parse(raw);
    const response = await fetch("/pos_api/v1/orders", {
        method: "POST",
        headers: {
            Authorization: `Bearer ${request.token}`,
            "Content-Type": "application/json",
        },
        body: JSON.stringify(request.body),
    });
    if (response.status !== 201) {
        throw new Error(`the device API answered ${response.status}: ${await response.text()}`);
    }
}

registry.category("web_tour.tours").add("point_of_sale_api_live_order_tour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            FloorScreen.isShown(),
            FloorScreen.selectedFloorIs("Dining Room"),
            {
                content: "a waiter device creates an order at table 4 through the API",
                trigger: ".floor-map",
                run: createOrderAsDevice,
            },
            FloorScreen.orderCountSyncedInTableIs(TABLE, "2"),
            FloorScreen.clickTable(TABLE),
            ProductScreen.isShown(),
            ProductScreen.orderLineHas(PRODUCT, "2"),
            Chrome.endTour(),
        ].flat(),
});
