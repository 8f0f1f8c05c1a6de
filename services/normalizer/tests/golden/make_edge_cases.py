#!/usr/bin/env python3
"""Writes the hand-written edge-case inputs (inputs/edge_*.json, inputs/err_*.json) from the
contract's example order. Amounts are computed with Decimal, the way the store does: line net =
qty x price (divided by 1 + rate when tax-inclusive), rounded to 2 dp; tax on the order total.
Run from this folder; the outputs are checked in, so this only needs re-running to add cases."""
import copy, json
from decimal import Decimal as D, ROUND_HALF_UP

ORDER = json.load(open("inputs/example_sales_order_created.json"))
ACCOUNT = json.load(open("inputs/example_account_updated.json"))
RETURN = json.load(open("inputs/example_sales_return_completed.json"))
RATES = {"GST15": D("0.15"), "GST10": D("0.10"), "GST0": D(0)}

def r2(d): return d.quantize(D("0.01"), rounding=ROUND_HALF_UP)
def r4(d): return d.quantize(D("0.0001"), rounding=ROUND_HALF_UP)

class Num(float):
    """Writes a Decimal as a JSON number with its exact digits."""
    def __init__(self, d): self.d = d
    def __repr__(self): return str(self.d)
    __str__ = __repr__

def enc(o):
    if isinstance(o, dict): return {k: enc(v) for k, v in o.items()}
    if isinstance(o, list): return [enc(v) for v in o]
    if isinstance(o, D): return Num(o)
    return o

def item(i, sku, name, qty, price, code="GST15", taxable=True, discounts=()):
    return {"ID": 6000 + i, "ProductID": 100 + i, "ProductKey": sku, "Sku": sku, "Name": name,
            "Quantity": D(qty), "UnitCorePrice": D(price), "UnitSoldPrice": D(price),
            "ProductIsTaxable": taxable, "ProductTaxCode": code, "ExtendedTaxAmount": None,
            "Discounts": [{"SlaveID": 50, "SlaveName": n, "DiscountTotal": D(a)} for n, a in discounts],
            "SerializableAttributes": {}}

def price(order, items, shipping="0", handling="0", fees="0", order_code="GST15",
          unallocated="0", tax_included=False, tax_adjust="0"):
    shipping, handling, fees, unallocated = D(shipping), D(handling), D(fees), D(unallocated)
    sub = D(0); tax_exact = D(0); alloc = D(0)
    for it in items:
        rate = RATES[it["ProductTaxCode"]] if it["ProductIsTaxable"] else D(0)
        gross = it["Quantity"] * it["UnitSoldPrice"]
        net = r2(gross / (1 + rate)) if tax_included else r2(gross)
        disc = sum((d["DiscountTotal"] for d in it["Discounts"]), D(0))
        it["ExtendedTaxAmount"] = r4((net - disc) * rate)
        sub += net; alloc += disc; tax_exact += (net - disc) * rate
    order_rate = RATES[order_code]
    tax = r2(tax_exact + (shipping + handling + fees - unallocated) * order_rate) + D(tax_adjust)
    t = {"SubTotal": sub, "Shipping": shipping, "Handling": handling, "Fees": fees,
         "Discounts": -(alloc + unallocated), "Tax": tax}
    t["Total"] = sub + shipping + handling + fees - alloc - unallocated + tax
    order["data"]["SalesItems"] = items
    order["data"]["Totals"] = t
    order["data"]["TaxIncluded"] = tax_included
    order["data"]["BalanceDue"] = D(0)
    pays = order["data"].get("SalesOrderPayments") or []
    if pays:
        pays[0]["Payment"]["Amount"] = t["Total"]
        pays[0]["Payment"]["CurrencyKey"] = order["data"]["CurrencyKey"]
    return order

def order(name, **kw):
    o = copy.deepcopy(ORDER)
    o["id"] = "evt_edge_" + name
    o["data"]["Discounts"] = []
    for k, v in kw.items(): o["data"][k] = v
    return o

def write(name, o):
    with open(f"inputs/{name}.json", "w") as f:
        json.dump(enc(o), f, indent=2, ensure_ascii=False)
        f.write("\n")

# Tax-inclusive pricing with 4-dp prices.
o = order("tax_inclusive_4dp", AccountID=None, AccountKey=None, AccountName=None)
write("edge_tax_inclusive_4dp", price(o, [item(1, "BLT-M8-50", "Bolt M8 x 50, box of 50", "3", "18.4950"),
                                          item(2, "WSH-M8", "Washer M8", "1", "9.9900")],
                                      shipping="5.00", tax_included=True))
# Order-level tax differs by a cent from the sum of per-line tax (3 x 1.5045).
o = order("tax_cent_difference")
write("edge_tax_cent_difference", price(o, [item(i, f"CLP-{i}", f"Clip {i}", "1", "10.03") for i in range(3)]))
# 100 % discount.
o = order("full_discount", SalesOrderPayments=[])
write("edge_full_discount", price(o, [item(1, "WID-001", "Widget, steel", "2", "25.00", discounts=[("FREEBIE", "50.00")])]))
# Zero-rated export to the US, USD, country by name in lower case.
o = order("zero_rated_export", CurrencyKey="USD")
for c in ("BillingContact", "ShippingContact"):
    o["data"][c]["Address"].update({"City": "portland", "RegionCode": "or", "RegionName": "Oregon",
                                    "PostalCode": "97201", "CountryCode": None, "CountryName": "united states"})
write("edge_zero_rated_export", price(o, [item(1, "CBL-CU-25", "Copper cable 2.5mm", "10", "4.2500", "GST0")],
                                      shipping="25.00", order_code="GST0"))
# Mixed-case country names, messy whitespace, lower-case postcode and region.
o = order("mixed_case_country")
o["data"]["ShippingContact"]["Address"].update({"Street1": "  40   Factory Road ", "City": "HAMILTON",
    "RegionCode": "wko", "PostalCode": " 3204 ", "CountryCode": None, "CountryName": "nEW zEALAND"})
o["data"]["BillingContact"]["Address"].update({"CountryCode": "nzl", "CountryName": None})
write("edge_mixed_case_country", price(o, [item(1, "WID-001", "Widget, steel", "1", "40.00")], shipping="10.00"))
# Missing optional fields: a guest, no contacts, no attributes, no payments, no dates.
o = order("missing_optional")
for k in ("AccountID", "AccountKey", "AccountName", "BillingContact", "ShippingContact", "SerializableAttributes",
          "SalesOrderPayments", "DueDate", "PurchaseOrderNumber", "ShippingDetail", "Notes", "UserContactFirstName",
          "UserContactLastName", "BalanceDue", "Discounts", "CreatedDate", "UserID", "UserKey"):
    o["data"].pop(k, None)
o["data"]["UserContactEmail"] = "  Guest.Person@Example.COM "
o = price(o, [item(1, "WID-001", "Widget, steel", "1", "40.00")])
o["data"].pop("TaxIncluded"); o["data"].pop("BalanceDue")
for it in o["data"]["SalesItems"]:
    it.pop("SerializableAttributes"); it.pop("Discounts")
write("edge_missing_optional", o)
# A 500-line order.
o = order("500_lines")
items = [item(i, f"SKU-{i:04d}", f"Part {i}", str(1 + i % 3), f"{1 + (i * 37) % 90}.{(i * 13) % 100:02d}",
              "GST0" if i % 50 == 0 else "GST15") for i in range(500)]
write("edge_500_lines", price(o, items, shipping="49.00"))
# A discount not allocated to items (default: a discount line).
o = order("unallocated_discount")
o["data"]["Discounts"] = [{"SlaveID": 77, "SlaveName": "ORDER10", "DiscountTotal": D("10.00"), "DiscountValueType": 0}]
write("edge_unallocated_discount", price(o, [item(1, "WID-001", "Widget, steel", "2", "40.00"),
                                             item(2, "BRK-010", "Bracket kit", "1", "20.00")],
                                         shipping="10.00", unallocated="10.00"))
# Handling and fees, GST10 in AUD to Australia.
o = order("gst10_au_handling_fees", CurrencyKey="AUD")
for c in ("BillingContact", "ShippingContact"):
    o["data"][c]["Address"].update({"City": "Sydney", "RegionCode": "NSW", "RegionName": "New South Wales",
                                    "PostalCode": "2000", "CountryCode": "AU", "CountryName": "Australia"})
o["data"]["SerializableAttributes"] = {}
write("edge_gst10_au_handling_fees", price(o, [item(1, "WID-001", "Widget, steel", "3", "33.3333", "GST10")],
                                           shipping="12.00", handling="3.50", fees="1.25", order_code="GST10"))
# A gift card (not taxable) beside a taxed item.
o = order("untaxed_item")
write("edge_untaxed_item", price(o, [item(1, "GIFT-50", "Gift card", "1", "50.00", "GST0", taxable=False),
                                     item(2, "WID-001", "Widget, steel", "1", "40.00")], shipping="5.00"))
# Lifecycle events of the example order.
for ty, status, name in [("sales_order.status_changed", "Shipped", "status_changed_shipped"),
                         ("sales_order.paid", "Full Payment Received", "paid"),
                         ("sales_order.voided", "Void", "voided"),
                         ("sales_order.updated", "Ready for Pickup", "updated_ready_for_pickup"),
                         ("sales_order.status_changed", "Partial Payment Received", "partial_payment")]:
    o = copy.deepcopy(ORDER)
    o["id"] = "evt_edge_" + name; o["type"] = ty
    o["data"]["StatusKey"] = status; o["data"]["StatusName"] = status; o["data"]["Version"] = 2
    if ty.endswith("status_changed"): o["data"]["PreviousStatusKey"] = "Pending"
    write("edge_" + name, o)
# A resync event (store.CustomKey only).
o = copy.deepcopy(ORDER)
o["id"] = "resync_main_1042_v1"; o["type"] = "sales_order.updated"; o["store"] = {"CustomKey": "main"}
write("edge_resync", o)
# Account created, with messy email case and no contacts list.
a = copy.deepcopy(ACCOUNT)
a["id"] = "evt_edge_account_created"; a["type"] = "account.created"
a["data"]["PrimaryContact"]["Email1"] = " Accounts@AcmeTrading.Example.co.nz"
a["data"]["AccountContacts"] = None; a["data"]["Version"] = 1
write("edge_account_created", a)
# A return refunding shipping too.
r = copy.deepcopy(RETURN)
r["id"] = "evt_edge_refund_with_shipping"
r["data"]["Totals"] = {"SubTotal": D("20.00"), "Shipping": D("10.00"), "Handling": D(0), "Fees": D(0),
                       "Discounts": D(0), "Tax": D("4.50"), "Total": D("34.50")}
r["data"]["RefundPayments"][0]["Amount"] = D("34.50")
write("edge_refund_with_shipping", r)

# Inputs that must be dead-lettered (their golden output is the error).
o = copy.deepcopy(ORDER); o["id"] = "evt_err_totals"; o["data"]["Totals"]["Total"] = D("120.76")
write("err_totals_identity", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_currency"; o["data"]["CurrencyKey"] = "XYZ"
write("err_unknown_currency", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_type"; o["type"] = "sales_order.deleted"
write("err_unknown_type", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_api"; o["api_version"] = "2027-01"
write("err_api_version", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_tax_code"
o["data"]["SalesItems"][1]["ProductTaxCode"] = "GST12"
write("err_unknown_tax_code", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_amount"; o["data"]["Totals"]["Tax"] = "fifteen"
write("err_amount_not_a_number", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_subtotal"; o["data"]["SalesItems"][1]["UnitSoldPrice"] = D("21.00")
write("err_subtotal_mismatch", o)
o = copy.deepcopy(ORDER); o["id"] = "evt_err_tax"
o["data"]["Totals"]["Tax"] = D("16.75"); o["data"]["Totals"]["Total"] = D("121.75")
write("err_tax_far_off", o)
with open("inputs/err_not_json.json", "w") as f:
    f.write('{"id": "evt_err_json", "type": "sales_order.created", "data": {\n')
