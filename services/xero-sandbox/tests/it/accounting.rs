use crate::util::*;
use serde_json::{Value, json};

#[tokio::test]
async fn demo_organisation_is_seeded() {
    let s = TestSandbox::start().await;
    let (st, v) = s.get("/Organisation").await;
    assert_eq!(st, 200);
    let org = &v["Organisations"][0];
    assert_eq!(org["BaseCurrency"], "NZD");
    assert_eq!(org["CountryCode"], "NZ");
    for k in ["Id", "Status", "ProviderName", "DateTimeUTC"] {
        assert!(v.get(k).is_some(), "envelope lacks {k}");
    }
    let (_, v) = s.get("/TaxRates").await;
    let rates = v["TaxRates"].as_array().unwrap();
    for t in ["OUTPUT2", "INPUT2", "ZERORATED", "EXEMPTOUTPUT", "NONE"] {
        assert!(rates.iter().any(|r| r["TaxType"] == t), "missing {t}");
    }
    let au = rates.iter().find(|r| r["Name"] == "AU GST 10%").unwrap();
    assert_eq!(d(&au["EffectiveRate"]), ds("10"));
    let (_, v) = s.get(r#"/Accounts?where=SystemAccount=="ROUNDING""#).await;
    assert_eq!(v["Accounts"].as_array().unwrap().len(), 1);
    let (_, v) = s.get(r#"/Accounts?where=Type=="BANK""#).await;
    assert_eq!(v["Accounts"][0]["Code"], "090");
    let (_, v) = s.get("/Accounts").await;
    let accounts = v["Accounts"].as_array().unwrap();
    assert!(
        accounts
            .iter()
            .any(|a| a["Code"] == "200" && a["Type"] == "REVENUE")
    );
    assert!(
        accounts
            .iter()
            .any(|a| a["Name"].as_str().unwrap().contains("Freight"))
    );
    assert!(
        accounts
            .iter()
            .any(|a| a["EnablePaymentsToAccount"] == true)
    );
    let (_, v) = s.get("/Currencies").await;
    let codes: Vec<&str> = v["Currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["NZD", "AUD", "USD", "GBP", "EUR"]);
    let (_, v) = s.get("/TrackingCategories").await;
    let cats = v["TrackingCategories"].as_array().unwrap();
    assert_eq!(cats[0]["Name"], "Region");
    // The demo mapping's Region values (North Island, South Island, Australia, Other) and
    // Export all exist, as do the demo store's sales channels.
    assert_eq!(cats[0]["Options"].as_array().unwrap().len(), 5);
    assert_eq!(cats[1]["Options"].as_array().unwrap().len(), 4);
    assert_eq!(cats[1]["Name"], "Sales Channel");
    assert_eq!(cats[1]["Options"][2]["Name"], "Marketplace");
}

#[tokio::test]
async fn invoice_tax_is_rounded_per_line_and_sent_totals_are_ignored() {
    let s = TestSandbox::start().await;
    let c = s.contact("Rounding Ltd").await;
    let line = json!({"Description": "x", "Quantity": 1, "UnitAmount": dec("25.43"), "AccountCode": "200", "TaxType": "OUTPUT2"});
    let (st, v) = s
        .put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "Date": "2026-11-20",
            "LineItems": [line.clone(), line.clone(), line], "Total": dec("999.99")}]}))
        .await;
    assert_eq!(st, 200, "{v}");
    let inv = &v["Invoices"][0];
    // 3 × round(3.8145) = 11.43, not round(76.29 × 0.15) = 11.44.
    assert_eq!(d(&inv["SubTotal"]), ds("76.29"));
    assert_eq!(d(&inv["TotalTax"]), ds("11.43"));
    assert_eq!(d(&inv["Total"]), ds("87.72"));
    assert_eq!(d(&inv["AmountDue"]), ds("87.72"));
    assert_eq!(inv["Status"], "DRAFT");
    assert_eq!(inv["InvoiceNumber"], "INV-0001");
    assert!(
        inv["Date"].as_str().unwrap().starts_with("/Date(")
            && inv["Date"].as_str().unwrap().ends_with("+0000)/")
    );
    assert!(
        inv["UpdatedDateUTC"]
            .as_str()
            .unwrap()
            .starts_with("/Date(")
    );
}

#[tokio::test]
async fn line_amount_types_unitdp_and_line_total_mismatch() {
    let s = TestSandbox::start().await;
    let c = s.contact("Lines Ltd").await;
    let put = |lat: &str, line: Value, q: &str| {
        let body = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "LineAmountTypes": lat, "LineItems": [line]}]});
        let path = format!("/Invoices{q}");
        let s = &s;
        async move { s.put(&path, body).await }
    };
    let (_, v) = put(
        "Inclusive",
        json!({"Description": "x", "Quantity": 1, "UnitAmount": 115, "AccountCode": "200"}),
        "",
    )
    .await;
    let inv = &v["Invoices"][0];
    assert_eq!(d(&inv["TotalTax"]), ds("15"));
    assert_eq!(d(&inv["SubTotal"]), ds("100"));
    assert_eq!(d(&inv["Total"]), ds("115"));
    let (_, v) = put(
        "NoTax",
        json!({"Description": "x", "Quantity": 2, "UnitAmount": 10, "AccountCode": "200"}),
        "",
    )
    .await;
    assert_eq!(d(&v["Invoices"][0]["TotalTax"]), ds("0"));
    assert_eq!(d(&v["Invoices"][0]["Total"]), ds("20"));
    // unitdp=4 keeps four places of UnitAmount; the line amount is still 2 dp.
    let (_, v) = put("Exclusive", json!({"Description": "x", "Quantity": 3, "UnitAmount": dec("1.2345"), "AccountCode": "200"}), "?unitdp=4").await;
    let l = &v["Invoices"][0]["LineItems"][0];
    assert_eq!(d(&l["UnitAmount"]), ds("1.2345"));
    assert_eq!(d(&l["LineAmount"]), ds("3.70"));
    let (_, v) = put("Exclusive", json!({"Description": "x", "Quantity": 3, "UnitAmount": dec("1.2345"), "AccountCode": "200"}), "").await;
    assert_eq!(
        d(&v["Invoices"][0]["LineItems"][0]["UnitAmount"]),
        ds("1.23")
    );
    assert_eq!(
        d(&v["Invoices"][0]["LineItems"][0]["LineAmount"]),
        ds("3.69")
    );
    // A LineAmount that contradicts Quantity × UnitAmount is rejected.
    let (st, v) = put("Exclusive", json!({"Description": "x", "Quantity": 2, "UnitAmount": 10, "LineAmount": 25, "AccountCode": "200"}), "").await;
    assert_eq!(st, 400);
    assert_eq!(v["Type"], "ValidationException");
    let msg = v["Elements"][0]["ValidationErrors"][0]["Message"]
        .as_str()
        .unwrap();
    assert!(
        msg.contains("does not match the expected line total 20.00"),
        "{msg}"
    );
}

#[tokio::test]
async fn accrec_invoice_numbers_are_unique_and_post_upserts_by_number() {
    let s = TestSandbox::start().await;
    let c = s.contact("Unique Ltd").await;
    let body = json!({"Invoices": [{"Type": "ACCREC", "InvoiceNumber": "WEB-1001", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]});
    assert_eq!(s.put("/Invoices", body.clone()).await.0, 200);
    let (st, v) = s.put("/Invoices", body.clone()).await;
    assert_eq!(st, 400);
    assert_eq!(
        v["Elements"][0]["ValidationErrors"][0]["Message"],
        "Invoice # must be unique."
    );
    let mut update = body.clone();
    update["Invoices"][0]["Reference"] = json!("updated");
    let (st, v) = s.post("/Invoices", update).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Invoices"][0]["Reference"], "updated");
    let (_, v) = s.get("/Invoices?InvoiceNumbers=WEB-1001").await;
    assert_eq!(v["Invoices"].as_array().unwrap().len(), 1);
    // Bills need not be unique.
    let bill = json!({"Invoices": [{"Type": "ACCPAY", "InvoiceNumber": "B-1", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "300"}]}]});
    assert_eq!(s.put("/Invoices", bill.clone()).await.0, 200);
    assert_eq!(s.put("/Invoices", bill).await.0, 200);
}

#[tokio::test]
async fn summarize_errors_false_reports_each_element_and_default_mode_still_persists_valid_ones() {
    let s = TestSandbox::start().await;
    let c = s.contact("Batch Ltd").await;
    let good = |n: &str| {
        json!({"Type": "ACCREC", "InvoiceNumber": n, "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]})
    };
    let bad = json!({"Type": "ACCREC", "InvoiceNumber": "B-BAD", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200", "TaxType": "NOPE"}]});
    let (st, v) = s
        .put(
            "/Invoices?summarizeErrors=false",
            json!({"Invoices": [good("B-1"), bad.clone(), good("B-2")]}),
        )
        .await;
    assert_eq!(st, 200);
    let els = v["Invoices"].as_array().unwrap();
    assert_eq!(els.len(), 3);
    assert_eq!(els[0]["StatusAttributeString"], "OK");
    assert_eq!(els[1]["StatusAttributeString"], "ERROR");
    assert_eq!(els[1]["HasErrors"], true);
    assert_eq!(els[1]["InvoiceID"], "00000000-0000-0000-0000-000000000000");
    assert!(
        els[1]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("TaxType code 'NOPE'")
    );
    assert_eq!(els[2]["StatusAttributeString"], "OK");

    let (st, v) = s
        .put("/Invoices", json!({"Invoices": [good("C-1"), bad]}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["ErrorNumber"], 10);
    assert_eq!(v["Type"], "ValidationException");
    assert_eq!(v["Message"], "A validation exception occurred");
    assert_eq!(
        v["Elements"].as_array().unwrap().len(),
        1,
        "only failed elements are listed"
    );
    // ... but the valid one was saved (Xero is not transactional here).
    let (_, v) = s.get("/Invoices?InvoiceNumbers=C-1").await;
    assert_eq!(v["Invoices"].as_array().unwrap().len(), 1);
    // Contacts report HasValidationErrors per element too.
    let (_, v) = s
        .put(
            "/Contacts?summarizeErrors=false",
            json!({"Contacts": [{"Name": "Batch Ltd"}, {"Name": "Fresh"}]}),
        )
        .await;
    assert_eq!(v["Contacts"][0]["HasValidationErrors"], true);
    assert_eq!(v["Contacts"][1]["HasValidationErrors"], false);
}

#[tokio::test]
async fn status_transitions_void_delete_and_paid() {
    let s = TestSandbox::start().await;
    let c = s.contact("Status Ltd").await;
    // Draft can be deleted.
    let (_, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]})).await;
    let draft = v["Invoices"][0]["InvoiceID"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/Invoices/{draft}"),
            json!({"Invoices": [{"Status": "DELETED"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Invoices"][0]["Status"], "DELETED");
    // Authorised cannot be deleted, can be voided.
    let inv = s.invoice(&c, "100").await;
    let id = inv["InvoiceID"].as_str().unwrap().to_string();
    let (st, _) = s
        .post(
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"Status": "DELETED"}]}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, v) = s
        .post(
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"Status": "VOIDED"}]}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["Invoices"][0]["Status"], "VOIDED");
    let (st, _) = s
        .post(
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"Reference": "late edit"}]}),
        )
        .await;
    assert_eq!(st, 400, "voided invoices cannot be edited");
    // Paid: payment takes AmountDue to 0; voiding is refused until the payment is deleted.
    let inv = s.invoice(&c, "100").await;
    let id = inv["InvoiceID"].as_str().unwrap().to_string();
    let (st, v) = s
        .put(
            "/Payments",
            json!({"Payments": [{"Invoice": {"InvoiceID": id}, "Account": {"Code": "090"},
        "Date": "2026-11-21", "Amount": 115}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let pay = v["Payments"][0]["PaymentID"].as_str().unwrap().to_string();
    assert_eq!(v["Payments"][0]["PaymentType"], "ACCRECPAYMENT");
    let (_, v) = s.get(&format!("/Invoices/{id}")).await;
    assert_eq!(v["Invoices"][0]["Status"], "PAID");
    assert_eq!(d(&v["Invoices"][0]["AmountDue"]), ds("0"));
    assert_eq!(d(&v["Invoices"][0]["AmountPaid"]), ds("115"));
    assert!(v["Invoices"][0]["FullyPaidOnDate"].as_str().is_some());
    let (st, v) = s
        .post(
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"Status": "VOIDED"}]}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("payment or credit note allocated")
    );
    let (st, v) = s
        .post(
            &format!("/Payments/{pay}"),
            json!({"Payments": [{"Status": "DELETED"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Payments"][0]["Status"], "DELETED");
    let (_, v) = s.get(&format!("/Invoices/{id}")).await;
    assert_eq!(v["Invoices"][0]["Status"], "AUTHORISED");
    assert_eq!(d(&v["Invoices"][0]["AmountDue"]), ds("115"));
    let (st, _) = s
        .post(
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"Status": "VOIDED"}]}),
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn payments_reject_overpayment_and_batch_put_pays_several() {
    let s = TestSandbox::start().await;
    let c = s.contact("Pay Ltd").await;
    let a = s.invoice(&c, "10").await;
    let b = s.invoice(&c, "20").await;
    let (st, v) = s.put("/Payments", json!({"Payments": [{"Invoice": {"InvoiceID": a["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": dec("11.51")}]})).await;
    assert_eq!(st, 400);
    assert_eq!(
        v["Elements"][0]["ValidationErrors"][0]["Message"],
        "Payment amount exceeds the amount outstanding on this document"
    );
    let (st, v) = s
        .put("/Payments?summarizeErrors=false", json!({"Payments": [
            {"Invoice": {"InvoiceID": a["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": dec("5.00"), "Date": "2026-11-22"},
            {"Invoice": {"InvoiceNumber": b["InvoiceNumber"]}, "Account": {"Code": "615"}, "Amount": dec("23.00"), "Date": "2026-11-22"},
            {"Invoice": {"InvoiceID": a["InvoiceID"]}, "Account": {"Code": "200"}, "Amount": 1}
        ]}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["Payments"][0]["StatusAttributeString"], "OK");
    assert_eq!(d(&v["Payments"][0]["Invoice"]["AmountDue"]), ds("6.5"));
    assert_eq!(v["Payments"][1]["Invoice"]["Status"], "PAID");
    assert_eq!(
        v["Payments"][2]["StatusAttributeString"], "ERROR",
        "a revenue account cannot take payments"
    );
    let (_, v) = s.get("/Payments").await;
    assert_eq!(v["Payments"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tracking_is_limited_to_two_existing_active_categories() {
    let s = TestSandbox::start().await;
    let c = s.contact("Track Ltd").await;
    let put = |tracking: Value| {
        let body = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "LineItems": [
            {"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200", "Tracking": tracking}]}]});
        let s = &s;
        async move { s.put("/Invoices", body).await }
    };
    let (st, v) = put(json!([{"Name": "Region", "Option": "North Island"}, {"Name": "Sales Channel", "Option": "Web Store"}])).await;
    assert_eq!(st, 200, "{v}");
    let t = &v["Invoices"][0]["LineItems"][0]["Tracking"];
    assert_eq!(t[0]["Option"], "North Island");
    assert!(t[0]["TrackingOptionID"].as_str().is_some());
    let (st, _) = put(json!([{"Name": "Region", "Option": "North Island"}, {"Name": "Sales Channel", "Option": "Web Store"}, {"Name": "Region", "Option": "Export"}])).await;
    assert_eq!(st, 400);
    let (st, v) = put(json!([{"Name": "Region", "Option": "Atlantis"}])).await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("Atlantis")
    );
    let (st, _) = put(json!([{"Name": "Colour", "Option": "Red"}])).await;
    assert_eq!(st, 400);
    // Archive the Region category: it can no longer be used.
    let (_, v) = s.get("/TrackingCategories").await;
    let region = v["TrackingCategories"][0]["TrackingCategoryID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = s
        .post(
            &format!("/TrackingCategories/{region}"),
            json!({"Status": "ARCHIVED"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = put(json!([{"Name": "Region", "Option": "North Island"}])).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn contacts_are_unique_upserted_and_archived_ones_cannot_be_used() {
    let s = TestSandbox::start().await;
    let (st, v) = s.put("/Contacts", json!({"Contacts": [{"Name": "Ann Smith", "ContactNumber": "CUST-1", "EmailAddress": "ann@example.com"}]})).await;
    assert_eq!(st, 200);
    let id = v["Contacts"][0]["ContactID"].as_str().unwrap().to_string();
    let (st, v) = s
        .put("/Contacts", json!({"Contacts": [{"Name": "ann smith"}]}))
        .await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("must be unique across all active contacts")
    );
    let (st, _) = s
        .put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Other", "ContactNumber": "CUST-1"}]}),
        )
        .await;
    assert_eq!(st, 400);
    // POST matches by ContactNumber, then by Name.
    let (st, v) = s
        .post(
            "/Contacts",
            json!({"Contacts": [{"ContactNumber": "CUST-1", "Name": "Ann Smith-Jones"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Contacts"][0]["ContactID"], id);
    let (_, v) = s
        .post(
            "/Contacts",
            json!({"Contacts": [{"Name": "Ann Smith-Jones", "FirstName": "Ann"}]}),
        )
        .await;
    assert_eq!(v["Contacts"][0]["ContactID"], id);
    assert_eq!(v["Contacts"][0]["FirstName"], "Ann");
    let (_, v) = s.get("/Contacts/CUST-1").await;
    assert_eq!(v["Contacts"][0]["ContactID"], id);
    let (_, v) = s
        .get(r#"/Contacts?where=EmailAddress=="ann@example.com""#)
        .await;
    assert_eq!(v["Contacts"].as_array().unwrap().len(), 1);
    // Archive, then it cannot be put on an invoice and its name is free again.
    let (st, _) = s
        .post(
            &format!("/Contacts/{id}"),
            json!({"Contacts": [{"ContactStatus": "ARCHIVED"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": id},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]})).await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("archived")
    );
    let (_, v) = s.get("/Contacts").await;
    assert!(
        v["Contacts"].as_array().unwrap().is_empty(),
        "archived contacts are hidden by default"
    );
    let (_, v) = s.get("/Contacts?includeArchived=true").await;
    assert_eq!(v["Contacts"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Ann Smith-Jones"}]})
        )
        .await
        .0,
        200
    );
    // A document's contact needs an identifier.
    let (st, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]})).await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .starts_with("The Contact must contain at least 1")
    );
}

#[tokio::test]
async fn credit_notes_allocate_within_limits_and_refund_as_payments() {
    let s = TestSandbox::start().await;
    let c = s.contact("Credit Ltd").await;
    let inv = s.invoice(&c, "100").await; // 115.00
    let (st, v) = s.put("/CreditNotes", json!({"CreditNotes": [{"Type": "ACCRECCREDIT", "Contact": {"ContactID": c}, "Status": "DRAFT",
        "LineItems": [{"Description": "refund", "Quantity": 1, "UnitAmount": 40, "AccountCode": "200"}]}]})).await;
    assert_eq!(st, 200, "{v}");
    let cn = v["CreditNotes"][0]["CreditNoteID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d(&v["CreditNotes"][0]["RemainingCredit"]), ds("46"));
    let alloc = |amount: &str| json!({"Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": dec(amount), "Date": "2026-11-22"}]});
    let (st, _) = s
        .put(&format!("/CreditNotes/{cn}/Allocations"), alloc("10"))
        .await;
    assert_eq!(st, 400, "draft credit notes cannot be allocated");
    let (st, _) = s
        .post(
            &format!("/CreditNotes/{cn}"),
            json!({"CreditNotes": [{"Status": "AUTHORISED"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .put(&format!("/CreditNotes/{cn}/Allocations"), alloc("46.01"))
        .await;
    assert_eq!(st, 400, "more than the remaining credit");
    let (st, v) = s
        .put(&format!("/CreditNotes/{cn}/Allocations"), alloc("30"))
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["Allocations"][0]["AllocationID"].as_str().is_some());
    let (_, v) = s
        .get(&format!("/Invoices/{}", inv["InvoiceID"].as_str().unwrap()))
        .await;
    assert_eq!(d(&v["Invoices"][0]["AmountDue"]), ds("85"));
    assert_eq!(d(&v["Invoices"][0]["AmountCredited"]), ds("30"));
    // Refund the remaining 16 as a payment against the credit note.
    let (st, _) = s.put("/Payments", json!({"Payments": [{"CreditNote": {"CreditNoteID": cn}, "Account": {"Code": "090"}, "Amount": dec("16.01")}]})).await;
    assert_eq!(st, 400);
    let (st, v) = s.put("/Payments", json!({"Payments": [{"CreditNote": {"CreditNoteID": cn}, "Account": {"Code": "090"}, "Amount": 16}]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Payments"][0]["PaymentType"], "ARCREDITPAYMENT");
    let (_, v) = s.get(&format!("/CreditNotes/{cn}")).await;
    assert_eq!(v["CreditNotes"][0]["Status"], "PAID");
    assert_eq!(d(&v["CreditNotes"][0]["RemainingCredit"]), ds("0"));
    // An allocation larger than the invoice's AmountDue is refused too.
    let (_, v) = s.put("/CreditNotes", json!({"CreditNotes": [{"Type": "ACCRECCREDIT", "Contact": {"ContactID": c}, "Status": "AUTHORISED",
        "LineItems": [{"Description": "big", "Quantity": 1, "UnitAmount": 500, "AccountCode": "200"}]}]})).await;
    let big = v["CreditNotes"][0]["CreditNoteID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = s
        .put(&format!("/CreditNotes/{big}/Allocations"), alloc("90"))
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .put(&format!("/CreditNotes/{big}/Allocations"), alloc("85"))
        .await;
    assert_eq!(st, 200);
    let (_, v) = s
        .get(&format!("/Invoices/{}", inv["InvoiceID"].as_str().unwrap()))
        .await;
    assert_eq!(v["Invoices"][0]["Status"], "PAID");
}

#[tokio::test]
async fn currencies_must_be_subscribed_and_missing_rates_use_the_daily_rate() {
    let s = TestSandbox::start().await;
    let c = s.contact("FX Ltd").await;
    let body = |cur: &str| {
        json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "CurrencyCode": cur,
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]})
    };
    let (st, v) = s.put("/Invoices", body("JPY")).await;
    assert_eq!(st, 400);
    assert_eq!(
        v["Elements"][0]["ValidationErrors"][0]["Message"],
        "Organisation is not subscribed to currency JPY"
    );
    let (st, v) = s.put("/Invoices", body("USD")).await;
    assert_eq!(st, 200);
    assert_eq!(d(&v["Invoices"][0]["CurrencyRate"]), ds("0.59"));
    let (st, v) = s.put("/Currencies", json!({"Code": "JPY"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.put("/Invoices", body("JPY")).await.0, 200);
}

#[tokio::test]
async fn documents_dated_on_or_before_the_period_lock_are_refused() {
    let s = TestSandbox::start().await;
    let c = s.contact("Lock Ltd").await;
    s.admin(
        reqwest::Method::POST,
        &format!("/tenants/{}/period-lock", s.tenants[0]),
        json!({"date": "2026-10-31"}),
    )
    .await;
    let body = |date: &str| {
        json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "Date": date,
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]})
    };
    let (st, v) = s.put("/Invoices", body("2026-10-31")).await;
    assert_eq!(st, 400);
    assert!(
        v["Elements"][0]["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("period lock date")
    );
    assert_eq!(s.put("/Invoices", body("2026-11-01")).await.0, 200);
    let (_, v) = s.get("/Organisation").await;
    assert!(
        v["Organisations"][0]["PeriodLockDate"]
            .as_str()
            .unwrap()
            .starts_with("/Date(")
    );
}

#[tokio::test]
async fn bad_account_codes_are_refused_on_approved_invoices() {
    let s = TestSandbox::start().await;
    let c = s.contact("Codes Ltd").await;
    let body = |status: &str| {
        json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c}, "Status": status,
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "999"}]}]})
    };
    let (st, v) = s.put("/Invoices", body("AUTHORISED")).await;
    assert_eq!(st, 400);
    assert_eq!(
        v["Elements"][0]["ValidationErrors"][0]["Message"],
        "Account code '999' is not a valid code for this document."
    );
    // On a draft the code is dropped with a warning.
    let (st, v) = s
        .put("/Invoices?summarizeErrors=false", body("DRAFT"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["Invoices"][0]["StatusAttributeString"], "WARNING");
    assert!(
        v["Invoices"][0]["LineItems"][0]
            .get("AccountCode")
            .is_none()
    );
}

#[tokio::test]
async fn atomic_batches_flag_rolls_back_a_failed_summarised_batch() {
    let mut c = config();
    c.atomic_batches = true;
    let s = TestSandbox::start_with(c).await;
    let (st, _) = s
        .put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Kept?"}, {"Name": ""}]}),
        )
        .await;
    assert_eq!(st, 400);
    let (_, v) = s.get("/Contacts").await;
    assert!(
        v["Contacts"].as_array().unwrap().is_empty(),
        "nothing persisted"
    );
    // Per-element mode is unaffected.
    let (st, _) = s
        .put(
            "/Contacts?summarizeErrors=false",
            json!({"Contacts": [{"Name": "Kept"}, {"Name": ""}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get("/Contacts").await;
    assert_eq!(v["Contacts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn midpoint_rounding_is_half_up_unless_bankers_is_configured() {
    let s = TestSandbox::start().await;
    let c = s.contact("Midpoint Ltd").await;
    let body = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": dec("14.30"), "AccountCode": "200"}]}]});
    // 14.30 × 15% = 2.145
    let (_, v) = s.put("/Invoices", body.clone()).await;
    assert_eq!(d(&v["Invoices"][0]["TotalTax"]), ds("2.15"));
    s.settings(json!({"bankers_rounding": true})).await;
    let (_, v) = s.put("/Invoices", body).await;
    assert_eq!(d(&v["Invoices"][0]["TotalTax"]), ds("2.14"));
}

#[tokio::test]
async fn tracking_categories_can_be_created_extended_and_deleted() {
    let s = TestSandbox::start().await;
    let (st, _) = s.put("/TrackingCategories", json!({"Name": "Third"})).await;
    assert_eq!(st, 400, "at most 2 active categories");
    let (_, v) = s.get("/TrackingCategories").await;
    let region = v["TrackingCategories"][0]["TrackingCategoryID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s
        .put(
            &format!("/TrackingCategories/{region}/Options"),
            json!({"Name": "Chatham Islands"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let opt = v["Options"][0]["TrackingOptionID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .req(
            reqwest::Method::DELETE,
            &format!("/TrackingCategories/{region}/Options/{opt}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req(
            reqwest::Method::DELETE,
            &format!("/TrackingCategories/{region}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = s.put("/TrackingCategories", json!({"Name": "Third"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["TrackingCategories"][0]["Status"], "ACTIVE");
}

#[tokio::test]
async fn documents_find_contacts_by_number_then_name_and_create_unknown_names() {
    let s = TestSandbox::start().await;
    let id = s.contact("Named Only").await;
    let line = json!([{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]);
    let (_, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactNumber": "NEW-9", "Name": "named only"}, "LineItems": line}]})).await;
    assert_eq!(
        v["Invoices"][0]["Contact"]["ContactID"], id,
        "an unknown number falls back to the name"
    );
    let (_, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "Brand New"}, "LineItems": line}]})).await;
    let new_id = v["Invoices"][0]["Contact"]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s.get(&format!("/Contacts/{new_id}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["Contacts"][0]["Name"], "Brand New");
    let (st, _) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactNumber": "NOPE"}, "LineItems": line}]})).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn extra_contact_fields_on_a_document_update_the_contact() {
    let s = TestSandbox::start().await;
    let id = s.contact("Trap Ltd").await;
    let line = json!([{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]);
    let (st, _) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": id, "EmailAddress": "new@example.com"}, "LineItems": line}]})).await;
    assert_eq!(st, 200);
    let (_, v) = s.get(&format!("/Contacts/{id}")).await;
    assert_eq!(v["Contacts"][0]["EmailAddress"], "new@example.com");
    let (_, v) = s.get("/Invoices?summaryOnly=true").await;
    assert!(v["Invoices"][0]["LineItems"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_summary_contact_keeps_what_matching_needs_and_drops_the_rest() {
    let s = TestSandbox::start().await;
    let (st, _) = s
        .put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Summary Ltd", "ContactNumber": "main:sum", "EmailAddress": "sum@example.com",
                "Addresses": [{"AddressType": "POBOX", "City": "Wellington"}],
                "PaymentTerms": {"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}}}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, full) = s
        .get("/Contacts?where=ContactNumber%3D%3D%22main%3Asum%22")
        .await;
    let (_, light) = s
        .get("/Contacts?where=ContactNumber%3D%3D%22main%3Asum%22&summaryOnly=true")
        .await;
    let (f, l) = (&full["Contacts"][0], &light["Contacts"][0]);
    assert!(f["Addresses"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(f["PaymentTerms"].is_object());
    for k in [
        "ContactID",
        "ContactNumber",
        "EmailAddress",
        "ContactStatus",
        "Name",
    ] {
        assert_eq!(f[k], l[k], "{k}");
    }
    assert!(l["Addresses"].as_array().is_none_or(|a| a.is_empty()));
    assert!(l["PaymentTerms"].is_null());
    assert!(light.to_string().len() < full.to_string().len());
}

#[tokio::test]
async fn single_payment_post_and_organisation_actions() {
    let s = TestSandbox::start().await;
    let c = s.contact("Single Pay Ltd").await;
    let inv = s.invoice(&c, "10").await;
    let (st, v) = s.post("/Payments", json!({"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": dec("11.50")})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Payments"][0]["Invoice"]["Status"], "PAID");
    let (_, v) = s.get("/Organisation/Actions").await;
    assert!(
        v["Actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["Name"] == "UseMulticurrency")
    );
}

#[tokio::test]
async fn a_line_amount_without_unit_amount_is_kept() {
    let s = TestSandbox::start().await;
    let c = s.contact("Amount Only Ltd").await;
    let (st, v) = s.put("/Invoices?unitdp=4", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 3, "LineAmount": 10, "AccountCode": "200"}]}]})).await;
    assert_eq!(st, 200, "{v}");
    let l = &v["Invoices"][0]["LineItems"][0];
    assert_eq!(d(&l["LineAmount"]), ds("10"));
    assert_eq!(d(&l["UnitAmount"]), ds("3.3333"));
    assert_eq!(d(&v["Invoices"][0]["SubTotal"]), ds("10"));
}

#[tokio::test]
async fn batch_payments_pay_several_invoices_and_are_deleted_whole() {
    let s = TestSandbox::start().await;
    let c = s.contact("Batch Pay Ltd").await;
    let a = s.invoice(&c, "10").await; // 11.50
    let b = s.invoice(&c, "20").await; // 23.00
    let body = |amount_b: &str| {
        json!({"BatchPayments": [{"Account": {"Code": "090"}, "Date": "2026-11-23", "Reference": "payout 7",
        "Payments": [{"Invoice": {"InvoiceID": a["InvoiceID"]}, "Amount": dec("11.50")}, {"Invoice": {"InvoiceID": b["InvoiceID"]}, "Amount": dec(amount_b)}]}]})
    };
    let (st, v) = s.put("/BatchPayments", body("23.01")).await;
    assert_eq!(st, 400, "one overpaying line fails the whole batch");
    assert_eq!(
        s.get("/Payments").await.1["Payments"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "{v}"
    );
    let (st, v) = s.put("/BatchPayments", body("20")).await;
    assert_eq!(st, 200, "{v}");
    crate::spec::validate_schema(&v, "BatchPayments");
    let batch = &v["BatchPayments"][0];
    assert_eq!(batch["Type"], "RECBATCH");
    assert_eq!(d(&batch["TotalAmount"]), ds("31.50"));
    let id = batch["BatchPaymentID"].as_str().unwrap().to_string();
    let (_, inv) = s
        .get(&format!("/Invoices/{}", a["InvoiceID"].as_str().unwrap()))
        .await;
    assert_eq!(inv["Invoices"][0]["Status"], "PAID");
    // Its payments cannot be deleted one by one, only the batch as a whole.
    let pay = batch["Payments"][0]["PaymentID"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = s
        .post(
            &format!("/Payments/{pay}"),
            json!({"Payments": [{"Status": "DELETED"}]}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, v) = s
        .post(
            &format!("/BatchPayments/{id}"),
            json!({"Status": "DELETED"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["BatchPayments"][0]["Status"], "DELETED");
    let (_, inv) = s
        .get(&format!("/Invoices/{}", a["InvoiceID"].as_str().unwrap()))
        .await;
    assert_eq!(inv["Invoices"][0]["Status"], "AUTHORISED");
    assert_eq!(d(&inv["Invoices"][0]["AmountDue"]), ds("11.5"));
    let (_, list) = s.get("/BatchPayments").await;
    assert_eq!(list["BatchPayments"].as_array().unwrap().len(), 1);
}
