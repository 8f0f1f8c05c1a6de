//! Payment terms on contacts and the organisation, and archived contacts made active again.

use crate::util::*;
use serde_json::json;

#[tokio::test]
async fn contacts_store_and_return_payment_terms_and_bad_terms_are_refused() {
    let s = TestSandbox::start().await;
    let terms = json!({"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}, "Bills": {"Day": 7, "Type": "DAYSAFTERBILLDATE"}});
    let (st, v) = s
        .put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Terms Ltd", "PaymentTerms": terms}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["Contacts"][0]["ContactID"].as_str().unwrap().to_owned();
    let (_, v) = s.get(&format!("/Contacts?IDs={id}")).await;
    assert_eq!(v["Contacts"][0]["PaymentTerms"], terms);
    // An update without PaymentTerms keeps them.
    let (st, _) = s
        .post(
            "/Contacts",
            json!({"Contacts": [{"ContactID": id, "EmailAddress": "t@example.com"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get(&format!("/Contacts/{id}")).await;
    assert_eq!(v["Contacts"][0]["PaymentTerms"]["Sales"]["Day"], 20);
    for bad in [
        json!({"Sales": {"Day": 5, "Type": "WHENEVER"}}),
        json!({"Sales": {"Day": 32, "Type": "OFCURRENTMONTH"}}),
    ] {
        let (st, v) = s
            .put(
                "/Contacts",
                json!({"Contacts": [{"Name": "Bad Terms", "PaymentTerms": bad}]}),
            )
            .await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["Elements"][0]["ValidationErrors"][0]["Message"]
                .as_str()
                .unwrap()
                .contains("payment term"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn organisation_terms_are_set_by_admin_and_returned() {
    let s = TestSandbox::start().await;
    let (_, v) = s.get("/Organisation").await;
    assert!(v["Organisations"][0].get("PaymentTerms").is_none());
    let path = format!("/tenants/{}/payment-terms", s.tenants[0]);
    let t = s
        .admin(
            reqwest::Method::POST,
            &path,
            json!({"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}}),
        )
        .await;
    assert_eq!(t["payment_terms"]["Sales"]["Day"], 14);
    let (_, v) = s.get("/Organisation").await;
    assert_eq!(
        v["Organisations"][0]["PaymentTerms"],
        json!({"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}})
    );
    s.admin(reqwest::Method::POST, &path, json!({})).await;
    let (_, v) = s.get("/Organisation").await;
    assert!(v["Organisations"][0].get("PaymentTerms").is_none());
}

#[tokio::test]
async fn an_archived_contact_made_active_again_takes_documents() {
    let s = TestSandbox::start().await;
    let id = s.contact("Sleepy Ltd").await;
    let status = |st: &str| json!({"Contacts": [{"ContactID": id, "ContactStatus": st}]});
    assert_eq!(s.post("/Contacts", status("ARCHIVED")).await.0, 200);
    let body = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": id}, "Status": "AUTHORISED",
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]});
    let (st, v) = s.put("/Invoices", body.clone()).await;
    assert_eq!(st, 400);
    assert!(v.to_string().contains("has been archived"), "{v}");
    let (st, v) = s.post("/Contacts", status("ACTIVE")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Contacts"][0]["ContactStatus"], "ACTIVE");
    assert_eq!(v["Contacts"][0]["Name"], "Sleepy Ltd", "the rest is kept");
    assert_eq!(s.put("/Invoices", body).await.0, 200);
}
