/**
 * Odoo's POS UI sends an order to the kitchen with its Order button, adds to
 * it and sends again, then splits the bill and pays the part split off. The
 * demo stations are the addon's (no Odoo order printer), so the browser
 * prints nothing: the server prints what the Order button recorded.
 *
 * Started by tests/test_kitchen_tour.py, which checks the tickets the
 * server printed, as the printers on 127.0.0.1 received them.
 */
import * as ChromePos from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as ChromeRestaurant from "@pos_restaurant/../tests/tours/utils/chrome";
import * as PaymentScreen from "@point_of_sale/../tests/tours/utils/payment_screen_util";
import * as ProductScreenPos from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as ReceiptScreen from "@point_of_sale/../tests/tours/utils/receipt_screen_util";
import * as FloorScreen from "@pos_restaurant/../tests/tours/utils/floor_screen_util";
import * as ProductScreenResto from "@pos_restaurant/../tests/tours/utils/product_screen_util";
import * as SplitBillScreen from "@pos_restaurant/../tests/tours/utils/split_bill_screen_util";
import { registry } from "@web/core/registry";

const Chrome = { ...ChromePos, ...ChromeRestaurant };
const ProductScreen = { ...ProductScreenPos, ...ProductScreenResto };

// Demo data of data/demo/restaurant_demo.xml.
const TABLE = "5";
const STARTER = "Bruschetta al Pomodoro"; // kitchen, 6.50
const DRINK = "Still Water 75 cl"; // bar
const CASH = "Cash (API demo)";

registry.category("web_tour.tours").add("point_of_sale_api_kitchen_order_tour", {
    steps: () =>
        [
            Chrome.startPoS(),
            FloorScreen.isShown(),
            FloorScreen.clickTable(TABLE),
            ProductScreen.isShown(),
            ProductScreen.clickDisplayedProduct(STARTER, true, "1"),
            ProductScreen.clickDisplayedProduct(DRINK, true, "1"),
            ProductScreen.orderlineIsToOrder(STARTER),
            ProductScreen.clickOrderButton(),
            ProductScreen.orderlinesHaveNoChange(),

            // One more starter: only it goes.
            ProductScreen.clickDisplayedProduct(STARTER, true, "2"),
            ProductScreen.orderlineIsToOrder(STARTER),
            ProductScreen.clickOrderButton(),
            ProductScreen.orderlinesHaveNoChange(),

            // One starter is paid apart: split it off and pay it.
            ProductScreen.clickControlButton("Split"),
            SplitBillScreen.clickOrderline(STARTER),
            SplitBillScreen.orderlineHas(STARTER, "2", "1"),
            SplitBillScreen.clickPay(),
            ProductScreen.isShown(),
            ProductScreen.totalAmountIs("6.50"),
            ProductScreen.clickPayButton(),
            PaymentScreen.clickPaymentMethod(CASH, true, { remaining: "0.00" }),
            PaymentScreen.clickValidate(),
            ReceiptScreen.isShown(),
            // Back to the table's order: nothing left to send.
            ReceiptScreen.clickContinueOrder(),
            ProductScreen.isShown(),
            ProductScreen.orderlinesHaveNoChange(),
            Chrome.clickPlanButton(),
            FloorScreen.isShown(),
            Chrome.endTour(),
        ].flat(),
});
