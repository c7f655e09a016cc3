/**
 * Odoo's own POS UI with point_of_sale_api installed: a cashier opens the
 * register of the demo restaurant "Trattoria (API demo)", takes an order on
 * a table, pays it in cash and moves on to the next order.
 *
 * Started by tests/test_pos_ui_tour.py, which checks what reached the
 * server (Odoo state, restaurant lifecycle, history) and closes the session.
 * Built only from Odoo 18.0's own POS tour helpers.
 */
import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as PaymentScreen from "@point_of_sale/../tests/tours/utils/payment_screen_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as ReceiptScreen from "@point_of_sale/../tests/tours/utils/receipt_screen_util";
import * as FloorScreen from "@pos_restaurant/../tests/tours/utils/floor_screen_util";
import { registry } from "@web/core/registry";

// Demo data of data/demo/restaurant_demo.xml.
const TABLE = "5"; // Dining Room
const STARTER = "Bruschetta al Pomodoro"; // 6.50, VAT 10% included
const DRINK = "Still Water 75 cl"; // 3.00 + VAT 20% = 3.60
const TOTAL = "10.10";
const CASH = "Cash (API demo)";

registry.category("web_tour.tours").add("point_of_sale_api_ui_order_tour", {
    steps: () =>
        [
            // The test leaves the session in opening control: the register
            // is opened from the UI, through Odoo's opening-cash popup.
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            FloorScreen.isShown(),
            FloorScreen.selectedFloorIs("Dining Room"),

            FloorScreen.clickTable(TABLE),
            ProductScreen.isShown(),
            ProductScreen.clickDisplayedProduct(STARTER, true, "1"),
            ProductScreen.clickDisplayedProduct(DRINK, true, "1"),
            ProductScreen.orderLineHas(STARTER, "1"),
            ProductScreen.totalAmountIs(TOTAL),

            ProductScreen.clickPayButton(),
            PaymentScreen.totalIs(TOTAL),
            PaymentScreen.clickPaymentMethod(CASH, true, { remaining: "0.00" }),
            PaymentScreen.validateButtonIsHighlighted(true),
            PaymentScreen.clickValidate(),

            ReceiptScreen.isShown(),
            ReceiptScreen.receiptIsThere(),
            ReceiptScreen.totalAmountContains(TOTAL),
            ReceiptScreen.clickNextOrder(),

            // Back on the floor plan, ready for the next table.
            FloorScreen.isShown(),
            Chrome.endTour(),
        ].flat(),
});
