//! Resource handlers: settings objects, contacts, invoices, credit notes, payments, allocations.

use crate::App;
use crate::api::Req;
use crate::model::*;
use crate::resp::{Resp, bad_request, envelope, not_found, ser, validation_exception};
use crate::state::{Settings, Tenant};
use crate::webhooks::{Category, EventKind};
use crate::where_expr;
use crate::xjson::{parse_day, parse_instant};
use axum::http::Method;
use chrono::{NaiveDate, Utc};
use ledgerline_platform::json::opt_decimal;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;
use uuid::Uuid;

/// Routes one authorised, counted call to its resource.
pub fn dispatch(app: &Arc<App>, tenant_id: Uuid, req: &Req, settings: &Settings) -> Resp {
    let mut events = Vec::new();
    let resp = {
        let mut store = app.store.lock().unwrap();
        let Some(t) = store.tenant_mut(tenant_id) else {
            return not_found();
        };
        let mut ctx = Ctx {
            t,
            req,
            settings,
            provider: &app.config.provider_name,
            events: &mut events,
        };
        ctx.route()
    };
    for (cat, kind, id) in events {
        app.emit(tenant_id, cat, kind, id);
    }
    resp
}

struct Ctx<'a> {
    t: &'a mut Tenant,
    req: &'a Req<'a>,
    settings: &'a Settings,
    provider: &'a str,
    events: &'a mut Vec<(Category, EventKind, Uuid)>,
}

fn round2(d: Decimal, s: &Settings) -> Decimal {
    d.round_dp_with_strategy(2, strategy(s))
}

fn strategy(s: &Settings) -> RoundingStrategy {
    if s.bankers_rounding {
        RoundingStrategy::MidpointNearestEven
    } else {
        RoundingStrategy::MidpointAwayFromZero
    }
}

const EMPTY: Uuid = Uuid::nil();

// ---------- request shapes ----------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ContactIn {
    #[serde(rename = "ContactID")]
    contact_id: Option<Uuid>,
    contact_number: Option<String>,
    account_number: Option<String>,
    contact_status: Option<String>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_address: Option<String>,
    tax_number: Option<String>,
    default_currency: Option<String>,
    addresses: Option<Vec<Value>>,
    phones: Option<Vec<Value>>,
    contact_persons: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TrackingIn {
    #[serde(rename = "TrackingCategoryID")]
    tracking_category_id: Option<Uuid>,
    #[serde(rename = "TrackingOptionID")]
    tracking_option_id: Option<Uuid>,
    name: Option<String>,
    option: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LineIn {
    #[serde(rename = "LineItemID")]
    line_item_id: Option<Uuid>,
    description: Option<String>,
    #[serde(with = "opt_decimal")]
    quantity: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    unit_amount: Option<Decimal>,
    item_code: Option<String>,
    account_code: Option<String>,
    #[serde(rename = "AccountID")]
    account_id: Option<Uuid>,
    tax_type: Option<String>,
    #[serde(with = "opt_decimal")]
    tax_amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    line_amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    discount_rate: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    discount_amount: Option<Decimal>,
    tracking: Option<Vec<TrackingIn>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DocIn {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "InvoiceID")]
    invoice_id: Option<Uuid>,
    #[serde(rename = "CreditNoteID")]
    credit_note_id: Option<Uuid>,
    invoice_number: Option<String>,
    credit_note_number: Option<String>,
    reference: Option<String>,
    contact: Option<ContactIn>,
    date: Option<String>,
    due_date: Option<String>,
    status: Option<String>,
    line_amount_types: Option<String>,
    line_items: Option<Vec<LineIn>>,
    currency_code: Option<String>,
    #[serde(with = "opt_decimal")]
    currency_rate: Option<Decimal>,
    url: Option<String>,
    sent_to_contact: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RefIn {
    #[serde(rename = "InvoiceID")]
    invoice_id: Option<Uuid>,
    invoice_number: Option<String>,
    #[serde(rename = "CreditNoteID")]
    credit_note_id: Option<Uuid>,
    credit_note_number: Option<String>,
    #[serde(rename = "AccountID")]
    account_id: Option<Uuid>,
    code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PaymentIn {
    #[serde(rename = "PaymentID")]
    payment_id: Option<Uuid>,
    invoice: Option<RefIn>,
    credit_note: Option<RefIn>,
    invoice_number: Option<String>,
    credit_note_number: Option<String>,
    account: Option<RefIn>,
    code: Option<String>,
    date: Option<String>,
    #[serde(with = "opt_decimal")]
    amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    currency_rate: Option<Decimal>,
    reference: Option<String>,
    is_reconciled: Option<bool>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AllocationIn {
    invoice: Option<RefIn>,
    #[serde(with = "opt_decimal")]
    amount: Option<Decimal>,
    date: Option<String>,
}

/// Splits a body into its elements: `{"Key":[...]}`, `{"Key":{...}}`, a bare array or object.
fn elements(body: &[u8], key: &str) -> Result<Vec<Box<RawValue>>, Resp> {
    let v: Box<RawValue> =
        serde_json::from_slice(body).map_err(|e| bad_request(&format!("Invalid JSON: {e}")))?;
    let text = v.get().trim_start();
    if text.starts_with('[') {
        return serde_json::from_str(v.get()).map_err(|e| bad_request(&e.to_string()));
    }
    let map: std::collections::HashMap<String, Box<RawValue>> =
        serde_json::from_str(v.get()).map_err(|e| bad_request(&e.to_string()))?;
    match map.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        Some((_, inner)) if inner.get().trim_start().starts_with('[') => {
            serde_json::from_str(inner.get()).map_err(|e| bad_request(&e.to_string()))
        }
        Some((_, inner)) => Ok(vec![inner]),
        None => Ok(vec![v]),
    }
}

fn parse_el<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("The request could not be read: {e}"))
}

fn bad_date(s: &Option<String>) -> Option<String> {
    match s {
        Some(d) if parse_day(d).is_none() => Some(format!("'{d}' is not a valid date")),
        _ => None,
    }
}

impl Ctx<'_> {
    fn route(&mut self) -> Resp {
        let segs: Vec<&str> = self.req.segs.iter().map(String::as_str).collect();
        let m = self.req.method.clone();
        match (m, segs.as_slice()) {
            (Method::GET, ["organisation"]) => self.one("Organisations", &self.t.org.clone()),
            (Method::GET, ["organisation", "actions"]) => self.actions(),
            (Method::GET, ["accounts"]) => {
                let docs: Vec<_> = self
                    .t
                    .accounts
                    .iter()
                    .map(|a| (ser(a), a.updated_date_utc))
                    .collect();
                self.list("Accounts", docs, false, true)
            }
            (Method::GET, ["accounts", id]) => {
                let id = id.to_string();
                match self
                    .t
                    .accounts
                    .iter()
                    .find(|a| a.account_id.to_string() == id)
                {
                    Some(a) => self.one("Accounts", &a.clone()),
                    None => not_found(),
                }
            }
            (Method::GET, ["taxrates"]) => {
                let docs: Vec<_> = self
                    .t
                    .tax_rates
                    .iter()
                    .map(|a| (ser(a), Utc::now()))
                    .collect();
                self.list("TaxRates", docs, false, false)
            }
            (Method::GET, ["taxrates", _]) => {
                let code = self.req.raw_segs[1].clone();
                match self
                    .t
                    .tax_rates
                    .iter()
                    .find(|r| r.tax_type.eq_ignore_ascii_case(&code))
                {
                    Some(r) => self.one("TaxRates", &r.clone()),
                    None => not_found(),
                }
            }
            (Method::GET, ["currencies"]) => {
                let docs: Vec<_> = self
                    .t
                    .currencies
                    .iter()
                    .map(|a| (ser(a), Utc::now()))
                    .collect();
                self.list("Currencies", docs, false, false)
            }
            (Method::PUT, ["currencies"]) => self.put_currency(),
            (Method::GET, ["trackingcategories"]) => {
                let all = self.req.q("includearchived") == Some("true");
                let docs: Vec<_> = self
                    .t
                    .tracking_categories
                    .iter()
                    .filter(|c| all || c.status == "ACTIVE")
                    .map(|c| {
                        let mut c = c.clone();
                        if !all {
                            c.options.retain(|o| o.status == "ACTIVE");
                        }
                        (ser(&c), Utc::now())
                    })
                    .collect();
                self.list("TrackingCategories", docs, false, false)
            }
            (Method::GET, ["trackingcategories", id]) => {
                let id = id.to_string();
                match self
                    .t
                    .tracking_categories
                    .iter()
                    .find(|c| c.tracking_category_id.to_string() == id)
                {
                    Some(c) => self.one("TrackingCategories", &c.clone()),
                    None => not_found(),
                }
            }
            (Method::PUT, ["trackingcategories"]) => self.put_tracking_category(),
            (Method::POST, ["trackingcategories", id]) => self.post_tracking_category(id),
            (Method::DELETE, ["trackingcategories", id]) => self.delete_tracking(id, None),
            (Method::DELETE, ["trackingcategories", id, "options", opt]) => {
                self.delete_tracking(id, Some(opt))
            }
            (Method::PUT, ["trackingcategories", id, "options"]) => self.put_tracking_option(id),
            (Method::POST, ["trackingcategories", id, "options", opt]) => {
                self.post_tracking_option(id, opt)
            }
            (Method::GET, ["contacts"]) => self.list_contacts(),
            (Method::GET, ["contacts", _]) => {
                let key = self.req.raw_segs[1].clone();
                let found = self.t.contacts.iter().find(|c| {
                    c.contact_id.to_string().eq_ignore_ascii_case(&key)
                        || c.contact_number.as_deref() == Some(&key)
                });
                match found {
                    Some(c) => self.one("Contacts", &c.clone()),
                    None => not_found(),
                }
            }
            (Method::PUT, ["contacts"]) => self.batch("Contacts", Self::contact_element, false),
            (Method::POST, ["contacts"]) => self.batch("Contacts", Self::contact_element, true),
            (Method::POST, ["contacts", id]) => {
                let Ok(id) = id.parse::<Uuid>() else {
                    return not_found();
                };
                if !self.t.contacts.iter().any(|c| c.contact_id == id) {
                    return not_found();
                }
                self.batch_for("Contacts", Self::contact_element, true, Some(id))
            }
            (Method::GET, ["invoices"]) => self.list_invoices(),
            (Method::GET, ["invoices", _]) => {
                let key = self.req.raw_segs[1].clone();
                let found = self.t.invoices.iter().find(|i| {
                    i.invoice_id.to_string().eq_ignore_ascii_case(&key) || i.invoice_number == key
                });
                match found {
                    Some(i) => {
                        let out = self.render_invoice(i);
                        envelope(self.provider, "Invoices", &[out], None::<&()>)
                    }
                    None => not_found(),
                }
            }
            (Method::PUT, ["invoices"]) => self.batch("Invoices", Self::invoice_element, false),
            (Method::POST, ["invoices"]) => self.batch("Invoices", Self::invoice_element, true),
            (Method::POST, ["invoices", id]) => {
                let key = id.to_string();
                let Some(id) = self
                    .t
                    .invoices
                    .iter()
                    .find(|i| {
                        i.invoice_id.to_string() == key
                            || i.invoice_number.eq_ignore_ascii_case(&key)
                    })
                    .map(|i| i.invoice_id)
                else {
                    return not_found();
                };
                self.batch_for("Invoices", Self::invoice_element, true, Some(id))
            }
            (Method::GET, ["creditnotes"]) => self.list_credit_notes(),
            (Method::GET, ["creditnotes", _]) => {
                let key = self.req.raw_segs[1].clone();
                let found = self.t.credit_notes.iter().find(|c| {
                    c.credit_note_id.to_string().eq_ignore_ascii_case(&key)
                        || c.credit_note_number == key
                });
                match found {
                    Some(c) => {
                        let out = self.render_credit_note(c);
                        envelope(self.provider, "CreditNotes", &[out], None::<&()>)
                    }
                    None => not_found(),
                }
            }
            (Method::PUT, ["creditnotes"]) => {
                self.batch("CreditNotes", Self::credit_note_element, false)
            }
            (Method::POST, ["creditnotes"]) => {
                self.batch("CreditNotes", Self::credit_note_element, true)
            }
            (Method::POST, ["creditnotes", id]) => {
                let Ok(id) = id.parse::<Uuid>() else {
                    return not_found();
                };
                if !self.t.credit_notes.iter().any(|c| c.credit_note_id == id) {
                    return not_found();
                }
                self.batch_for("CreditNotes", Self::credit_note_element, true, Some(id))
            }
            (Method::PUT, ["creditnotes", id, "allocations"]) => {
                let Ok(id) = id.parse::<Uuid>() else {
                    return not_found();
                };
                if !self.t.credit_notes.iter().any(|c| c.credit_note_id == id) {
                    return not_found();
                }
                self.batch_for("Allocations", Self::allocation_element, false, Some(id))
            }
            (Method::DELETE, ["creditnotes", id, "allocations", aid]) => {
                self.delete_allocation(id, aid)
            }
            (Method::GET, ["payments"]) => self.list_payments(),
            (Method::GET, ["payments", id]) => {
                let id = id.to_string();
                match self
                    .t
                    .payments
                    .iter()
                    .find(|p| p.payment_id.to_string() == id)
                {
                    Some(p) => {
                        let out = ser(&self.render_payment(p));
                        envelope(self.provider, "Payments", &[out], None::<&()>)
                    }
                    None => not_found(),
                }
            }
            (Method::PUT, ["payments"]) | (Method::POST, ["payments"]) => {
                self.batch("Payments", Self::payment_element, false)
            }
            (Method::POST, ["payments", id]) => {
                let Ok(id) = id.parse::<Uuid>() else {
                    return not_found();
                };
                if !self.t.payments.iter().any(|p| p.payment_id == id) {
                    return not_found();
                }
                self.batch_for("Payments", Self::payment_element, true, Some(id))
            }
            _ => not_found(),
        }
    }

    fn one<T: serde::Serialize>(&self, key: &str, v: &T) -> Resp {
        envelope(self.provider, key, &[ser(v)], None::<&()>)
    }

    fn actions(&self) -> Resp {
        let names = [
            "UseMulticurrency",
            "CreateApprovedInvoice",
            "CreateDraftInvoice",
            "CreateApprovedPayment",
        ];
        let items: Vec<String> = names
            .iter()
            .map(|n| format!(r#"{{"Name":"{n}","Status":"ALLOWED"}}"#))
            .collect();
        envelope(self.provider, "Actions", &items, None::<&()>)
    }

    fn touch(&mut self, cat: Category, kind: EventKind, id: Uuid) {
        self.events.push((cat, kind, id));
    }

    // ---------- lists ----------

    /// Filters (If-Modified-Since, where), orders and optionally pages serialized documents.
    fn list(
        &self,
        key: &str,
        docs: Vec<(String, chrono::DateTime<Utc>)>,
        paged: bool,
        modified_since: bool,
    ) -> Resp {
        let mut docs = docs;
        if modified_since
            && let Some(ims) = self
                .req
                .headers
                .get("if-modified-since")
                .and_then(|v| v.to_str().ok())
            && let Some(t) = parse_instant(ims).or_else(|| {
                chrono::DateTime::parse_from_rfc2822(ims)
                    .ok()
                    .map(|t| t.to_utc())
            })
        {
            docs.retain(|(_, u)| u.timestamp_millis() > t.timestamp_millis());
        }
        let wher = self.req.q("where").map(str::trim).filter(|w| !w.is_empty());
        let order = self.req.q("order").map(str::to_string);
        if wher.is_some() || order.is_some() {
            let mut vals: Vec<(String, Value)> = docs
                .into_iter()
                .map(|(s, _)| {
                    let v = serde_json::from_str(&s).unwrap_or(Value::Null);
                    (s, v)
                })
                .collect();
            if let Some(w) = wher {
                let expr = match where_expr::parse(w) {
                    Ok(e) => e,
                    Err(e) => return bad_request(&e.to_string()),
                };
                vals.retain(|(_, v)| where_expr::eval(&expr, v));
            }
            if let Some(o) = order {
                let mut parts = o.split_whitespace();
                let field = parts.next().unwrap_or("").to_string();
                let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
                vals.sort_by(|(_, a), (_, b)| {
                    let get = |v: &Value| {
                        v.as_object().and_then(|m| {
                            m.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(&field))
                                .map(|(_, x)| x.clone())
                        })
                    };
                    let ord = cmp_values(get(a).as_ref(), get(b).as_ref());
                    if desc { ord.reverse() } else { ord }
                });
            }
            docs = vals.into_iter().map(|(s, _)| (s, Utc::now())).collect();
        }
        if !paged {
            let items: Vec<String> = docs.into_iter().map(|(s, _)| s).collect();
            return envelope(self.provider, key, &items, None::<&()>);
        }
        let page: usize = self
            .req
            .q("page")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let size: usize = self
            .req
            .q("pagesize")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(100)
            .min(1000);
        let count = docs.len();
        let items: Vec<String> = docs
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|(s, _)| s)
            .collect();
        let p = Pagination {
            page,
            page_size: size,
            page_count: count.div_ceil(size),
            item_count: count,
        };
        envelope(self.provider, key, &items, Some(&p))
    }

    fn id_list(&self, k: &str) -> Option<Vec<String>> {
        self.req.q(k).map(|s| {
            s.split(',')
                .map(|x| x.trim().to_ascii_lowercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
    }

    fn search_matches(&self, fields: &[Option<&str>]) -> bool {
        match self.req.q("searchterm") {
            None => true,
            Some(term) => {
                let term = term.to_lowercase();
                fields
                    .iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&term))
            }
        }
    }

    fn list_contacts(&self) -> Resp {
        let ids = self.id_list("ids");
        let archived = self.req.q("includearchived") == Some("true") || ids.is_some();
        let docs: Vec<_> = self
            .t
            .contacts
            .iter()
            .filter(|c| archived || c.contact_status != "ARCHIVED")
            .filter(|c| {
                ids.as_ref()
                    .is_none_or(|l| l.contains(&c.contact_id.to_string()))
            })
            .filter(|c| {
                self.search_matches(&[
                    Some(&c.name),
                    c.first_name.as_deref(),
                    c.last_name.as_deref(),
                    c.contact_number.as_deref(),
                    c.email_address.as_deref(),
                ])
            })
            .map(|c| (ser(c), c.updated_date_utc))
            .collect();
        self.list("Contacts", docs, true, true)
    }

    fn list_invoices(&self) -> Resp {
        let ids = self.id_list("ids");
        let numbers = self.id_list("invoicenumbers");
        let contacts = self.id_list("contactids");
        let statuses: Option<Vec<String>> = self.req.q("statuses").map(|s| {
            s.split(',')
                .map(|x| x.trim().to_ascii_uppercase())
                .collect()
        });
        let docs: Vec<_> = self
            .t
            .invoices
            .iter()
            .filter(|i| {
                ids.as_ref()
                    .is_none_or(|l| l.contains(&i.invoice_id.to_string()))
            })
            .filter(|i| {
                numbers
                    .as_ref()
                    .is_none_or(|l| l.contains(&i.invoice_number.to_ascii_lowercase()))
            })
            .filter(|i| {
                contacts
                    .as_ref()
                    .is_none_or(|l| l.contains(&i.contact.contact_id.to_string()))
            })
            .filter(|i| statuses.as_ref().is_none_or(|l| l.contains(&i.status)))
            .filter(|i| self.search_matches(&[Some(&i.invoice_number), i.reference.as_deref()]))
            .map(|i| (self.render_invoice(i), i.updated_date_utc))
            .collect();
        self.list("Invoices", docs, true, true)
    }

    fn list_credit_notes(&self) -> Resp {
        let docs: Vec<_> = self
            .t
            .credit_notes
            .iter()
            .map(|c| (self.render_credit_note(c), c.updated_date_utc))
            .collect();
        self.list("CreditNotes", docs, true, true)
    }

    fn list_payments(&self) -> Resp {
        let docs: Vec<_> = self
            .t
            .payments
            .iter()
            .map(|p| (ser(&self.render_payment(p)), p.updated_date_utc))
            .collect();
        self.list("Payments", docs, true, true)
    }

    fn unitdp(&self) -> u32 {
        if self.req.q("unitdp") == Some("4") {
            4
        } else {
            2
        }
    }

    fn round_units(&self, lines: &mut [LineItem]) {
        if self.unitdp() == 2 {
            for l in lines {
                l.unit_amount = round2(l.unit_amount, self.settings);
            }
        }
    }

    fn render_invoice(&self, i: &Invoice) -> String {
        let mut i = i.clone();
        self.round_units(&mut i.line_items);
        ser(&i)
    }

    fn render_credit_note(&self, c: &CreditNote) -> String {
        let mut c = c.clone();
        self.round_units(&mut c.line_items);
        ser(&c)
    }

    fn render_payment(&self, p: &Payment) -> Payment {
        let mut p = p.clone();
        if let Some(r) = &mut p.invoice
            && let Some(i) = self
                .t
                .invoices
                .iter()
                .find(|i| i.invoice_id == r.invoice_id)
        {
            *r = invoice_ref(i);
        }
        if let Some(r) = &mut p.credit_note
            && let Some(c) = self
                .t
                .credit_notes
                .iter()
                .find(|c| c.credit_note_id == r.credit_note_id)
        {
            r.remaining_credit = Some(c.remaining_credit);
            r.status = Some(c.status.clone());
        }
        p
    }

    // ---------- batches ----------

    fn batch(
        &mut self,
        key: &str,
        f: fn(&mut Self, &RawValue, bool, Option<Uuid>) -> (String, bool),
        upsert: bool,
    ) -> Resp {
        self.batch_for(key, f, upsert, None)
    }

    /// Runs each element; `summarizeErrors=false` answers 200 with per-element outcomes, otherwise
    /// any failure is a 400 ValidationException listing only the failed elements, while the valid
    /// ones stay saved (unless atomic batches are configured).
    fn batch_for(
        &mut self,
        key: &str,
        f: fn(&mut Self, &RawValue, bool, Option<Uuid>) -> (String, bool),
        upsert: bool,
        target: Option<Uuid>,
    ) -> Resp {
        let els = match elements(self.req.body, key) {
            Ok(e) => e,
            Err(r) => return r,
        };
        if els.is_empty() {
            return bad_request(&format!("No {key} were supplied"));
        }
        let summarize = self
            .req
            .q("summarizeerrors")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let backup = (summarize && self.settings.atomic_batches).then(|| self.t.clone());
        let events_before = self.events.len();
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut all = Vec::new();
        for raw in &els {
            let (out, good) = f(self, raw, upsert, target);
            if good {
                ok.push(out.clone());
            } else {
                failed.push(out.clone());
            }
            all.push(out);
        }
        if !summarize {
            return envelope(self.provider, key, &all, None::<&()>);
        }
        if failed.is_empty() {
            return envelope(self.provider, key, &ok, None::<&()>);
        }
        if let Some(b) = backup {
            *self.t = b;
            self.events.truncate(events_before);
        }
        validation_exception(&failed)
    }

    // ---------- contacts ----------

    fn contact_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: ContactIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        // Which existing contact this element updates, if any.
        let existing_idx = if let Some(id) = target {
            self.t.contacts.iter().position(|c| c.contact_id == id)
        } else if upsert {
            if let Some(id) = input.contact_id {
                let idx = self.t.contacts.iter().position(|c| c.contact_id == id);
                if idx.is_none() {
                    errors.push(Message::new(format!(
                        "The contact with ContactID {id} could not be found"
                    )));
                }
                idx
            } else if let Some(n) = input.contact_number.as_deref().filter(|n| !n.is_empty()) {
                self.t
                    .contacts
                    .iter()
                    .position(|c| c.contact_number.as_deref() == Some(n))
            } else {
                None
            }
            .or_else(|| {
                input.name.as_deref().and_then(|n| {
                    self.t.contacts.iter().position(|c| {
                        c.contact_status == "ACTIVE" && c.name.trim().eq_ignore_ascii_case(n.trim())
                    })
                })
            })
        } else {
            if let Some(id) = input.contact_id
                && self.t.contacts.iter().any(|c| c.contact_id == id)
            {
                errors.push(Message::new("A contact with this ContactID already exists"));
            }
            None
        };
        let now = Utc::now();
        let mut c = match existing_idx {
            Some(i) => self.t.contacts[i].clone(),
            None => Contact {
                contact_id: Uuid::new_v4(),
                contact_number: None,
                account_number: None,
                contact_status: "ACTIVE".into(),
                name: String::new(),
                first_name: None,
                last_name: None,
                email_address: None,
                tax_number: None,
                default_currency: None,
                addresses: Vec::new(),
                phones: Vec::new(),
                contact_persons: Vec::new(),
                is_supplier: false,
                is_customer: false,
                has_attachments: false,
                updated_date_utc: now,
                has_validation_errors: false,
                outcome: Outcome::default(),
            },
        };
        macro_rules! set {
            ($f:ident) => {
                if let Some(v) = input.$f.clone() {
                    c.$f = Some(v);
                }
            };
        }
        set!(contact_number);
        set!(account_number);
        set!(first_name);
        set!(last_name);
        set!(email_address);
        set!(tax_number);
        set!(default_currency);
        if let Some(n) = &input.name {
            c.name = n.trim().to_string();
        }
        if let Some(s) = &input.contact_status {
            c.contact_status = s.to_ascii_uppercase();
        }
        if let Some(a) = input.addresses.clone() {
            c.addresses = a;
        }
        if let Some(p) = input.phones.clone() {
            c.phones = p;
        }
        if let Some(p) = input.contact_persons.clone() {
            c.contact_persons = p;
        }
        if c.name.is_empty() {
            errors.push(Message::new("The contact name must be specified"));
        }
        if c.name.chars().count() > 255 {
            errors.push(Message::new(
                "The contact name must be 255 characters or fewer",
            ));
        }
        if c.contact_number
            .as_ref()
            .is_some_and(|n| n.chars().count() > 50)
        {
            errors.push(Message::new(
                "The contact number must be 50 characters or fewer",
            ));
        }
        if !["ACTIVE", "ARCHIVED", "GDPRREQUEST"].contains(&c.contact_status.as_str()) {
            errors.push(Message::new(format!(
                "'{}' is not a valid ContactStatus",
                c.contact_status
            )));
        }
        let me = c.contact_id;
        if c.contact_status == "ACTIVE"
            && self.t.contacts.iter().any(|o| {
                o.contact_id != me
                    && o.contact_status == "ACTIVE"
                    && o.name.trim().eq_ignore_ascii_case(&c.name)
            })
        {
            errors.push(Message::new(format!(
                "The contact name {} is already assigned to another contact. The contact name must be unique across all active contacts.",
                c.name
            )));
        }
        if let Some(n) = c.contact_number.as_deref().filter(|n| !n.is_empty())
            && self
                .t
                .contacts
                .iter()
                .any(|o| o.contact_id != me && o.contact_number.as_deref() == Some(n))
        {
            errors.push(Message::new(
                "Another contact has this contact number. The contact number must be unique.",
            ));
        }
        if !errors.is_empty() {
            if existing_idx.is_none() {
                c.contact_id = input.contact_id.unwrap_or(EMPTY);
            }
            c.has_validation_errors = true;
            c.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&c), false);
        }
        c.updated_date_utc = now;
        let kind = match existing_idx {
            Some(i) => {
                self.t.contacts[i] = c.clone();
                // Embedded copies follow the contact's name.
                for inv in self
                    .t
                    .invoices
                    .iter_mut()
                    .filter(|i| i.contact.contact_id == me)
                {
                    inv.contact = ContactRef::from(&c);
                }
                EventKind::Update
            }
            None => {
                self.t.contacts.push(c.clone());
                EventKind::Create
            }
        };
        self.touch(Category::Contact, kind, me);
        if summarize {
            c.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&c), true)
    }

    /// Finds or (by name) creates the contact a document points at.
    fn resolve_contact(&mut self, c: &Option<ContactIn>, errors: &mut Vec<Message>) -> ContactRef {
        let blank = ContactRef {
            contact_id: EMPTY,
            contact_number: None,
            name: String::new(),
            contact_status: String::new(),
            has_validation_errors: false,
        };
        let Some(c) = c else {
            errors.push(Message::new(
                "The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, ContactNumber",
            ));
            return blank;
        };
        let found = if let Some(id) = c.contact_id {
            let f = self.t.contacts.iter().find(|x| x.contact_id == id);
            if f.is_none() {
                errors.push(Message::new(format!(
                    "The contact with ContactID {id} does not exist"
                )));
                return blank;
            }
            f
        } else if let Some(n) = c.contact_number.as_deref().filter(|n| !n.is_empty()) {
            let f = self
                .t
                .contacts
                .iter()
                .find(|x| x.contact_number.as_deref() == Some(n));
            if f.is_none() && c.name.is_none() {
                errors.push(Message::new(format!(
                    "The contact with ContactNumber {n} does not exist"
                )));
                return blank;
            }
            // Not found by number: an active contact of the same name is the match, as on Xero.
            f.or_else(|| {
                let name = c.name.as_deref().unwrap_or_default().trim();
                self.t
                    .contacts
                    .iter()
                    .find(|x| x.contact_status == "ACTIVE" && x.name.eq_ignore_ascii_case(name))
            })
        } else if let Some(n) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
            self.t
                .contacts
                .iter()
                .find(|x| x.contact_status == "ACTIVE" && x.name.eq_ignore_ascii_case(n.trim()))
        } else {
            errors.push(Message::new(
                "The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, ContactNumber",
            ));
            return blank;
        };
        match found {
            Some(x) if x.contact_status == "ARCHIVED" => {
                errors.push(Message::new(format!(
                    "The contact '{}' has been archived. Documents cannot be created or updated for archived contacts.",
                    x.name
                )));
                ContactRef::from(x)
            }
            Some(x) => ContactRef::from(x),
            None => {
                let name = c.name.clone().unwrap_or_default();
                if !errors.is_empty() {
                    return ContactRef { name, ..blank };
                }
                let now = Utc::now();
                let contact = Contact {
                    contact_id: Uuid::new_v4(),
                    contact_number: c.contact_number.clone(),
                    account_number: None,
                    contact_status: "ACTIVE".into(),
                    name: name.trim().to_string(),
                    first_name: c.first_name.clone(),
                    last_name: c.last_name.clone(),
                    email_address: c.email_address.clone(),
                    tax_number: None,
                    default_currency: None,
                    addresses: c.addresses.clone().unwrap_or_default(),
                    phones: c.phones.clone().unwrap_or_default(),
                    contact_persons: Vec::new(),
                    is_supplier: false,
                    is_customer: false,
                    has_attachments: false,
                    updated_date_utc: now,
                    has_validation_errors: false,
                    outcome: Outcome::default(),
                };
                let r = ContactRef::from(&contact);
                self.touch(Category::Contact, EventKind::Create, contact.contact_id);
                self.t.contacts.push(contact);
                r
            }
        }
    }

    // ---------- shared document arithmetic ----------

    fn currency(
        &self,
        code: &Option<String>,
        rate: Option<Decimal>,
        errors: &mut Vec<Message>,
    ) -> (String, Decimal) {
        let base = self.t.org.base_currency.clone();
        let code = code
            .clone()
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| base.clone());
        if !self.t.currencies.iter().any(|c| c.code == code) {
            errors.push(Message::new(format!(
                "Organisation is not subscribed to currency {code}"
            )));
            return (code, Decimal::ONE);
        }
        if code == base {
            return (code, Decimal::ONE);
        }
        let r = rate
            .or_else(|| self.t.daily_rates.get(&code).copied())
            .unwrap_or(Decimal::ONE);
        if r <= Decimal::ZERO {
            errors.push(Message::new("The CurrencyRate must be greater than zero"));
        }
        (code, r)
    }

    fn check_lock(&self, date: NaiveDate, errors: &mut Vec<Message>) {
        if let Some(lock) = self.t.org.period_lock_date
            && date <= lock
        {
            errors.push(Message::new(format!(
                "The document date cannot be before the period lock date, {}",
                lock.format("%d %b %Y")
            )));
        }
    }

    /// Computes lines and totals the way Xero does: per-line tax rounded to 2 dp, then summed.
    #[allow(clippy::too_many_arguments)]
    fn compute_lines(
        &self,
        lines: &[LineIn],
        existing: &[LineItem],
        lat: &str,
        sales: bool,
        allow_discount: bool,
        approving: bool,
        errors: &mut Vec<Message>,
        warnings: &mut Vec<Message>,
    ) -> (Vec<LineItem>, Decimal, Decimal, Decimal, Option<Decimal>) {
        let s = self.settings;
        let dp = self.unitdp();
        let mut out = Vec::new();
        let (mut sub, mut tax, mut disc_total) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        for l in lines {
            let mut line_errors = Vec::new();
            let (qty, unit) = match (l.quantity, l.unit_amount, l.line_amount) {
                (None, None, Some(a)) => (Decimal::ONE, a),
                (Some(q), None, Some(a)) if !q.is_zero() => (q, a / q),
                (None, Some(u), _) => (Decimal::ONE, u),
                (q, u, _) => (q.unwrap_or(Decimal::ZERO), u.unwrap_or(Decimal::ZERO)),
            };
            let qty = qty.round_dp_with_strategy(4, strategy(s));
            let unit = unit.round_dp_with_strategy(dp, strategy(s));
            let gross = qty * unit;
            if (l.discount_rate.is_some() || l.discount_amount.is_some()) && !allow_discount {
                line_errors.push(Message::new(
                    "Discounts are not supported on this document type",
                ));
            }
            let (computed, discount) = if let Some(r) = l.discount_rate {
                let c = round2(gross * (Decimal::ONE_HUNDRED - r) / Decimal::ONE_HUNDRED, s);
                (c, round2(gross, s) - c)
            } else if let Some(d) = l.discount_amount {
                (round2(gross - d, s), d)
            } else {
                (round2(gross, s), Decimal::ZERO)
            };
            disc_total += discount;
            if let Some(sent) = l.line_amount
                && l.quantity.is_some()
                && l.unit_amount.is_some()
                && round2(sent, s) != computed
            {
                line_errors.push(Message::new(format!(
                    "The line total {:.2} does not match the expected line total {:.2}",
                    round2(sent, s),
                    computed
                )));
            }
            // Account.
            let mut account_code = l.account_code.clone().filter(|c| !c.is_empty());
            let mut account_id = l.account_id;
            let account = match (&account_code, account_id) {
                (Some(code), _) => self
                    .t
                    .accounts
                    .iter()
                    .find(|a| a.code.eq_ignore_ascii_case(code)),
                (None, Some(id)) => self.t.accounts.iter().find(|a| a.account_id == id),
                _ => None,
            };
            let usable = account.filter(|a| a.status == "ACTIVE" && a.kind != "BANK");
            if (account_code.is_some() || account_id.is_some()) && usable.is_none() {
                let shown = account_code
                    .clone()
                    .or(account_id.map(|i| i.to_string()))
                    .unwrap_or_default();
                if approving {
                    line_errors.push(Message::new(format!(
                        "Account code '{shown}' is not a valid code for this document."
                    )));
                } else {
                    warnings.push(Message::new(format!(
                        "Account code '{shown}' has been removed as it does not match a recognised account."
                    )));
                    account_code = None;
                    account_id = None;
                }
            }
            if let Some(a) = usable {
                account_code = Some(a.code.clone());
                account_id = Some(a.account_id);
            }
            if approving && usable.is_none() && !computed.is_zero() {
                line_errors.push(Message::new(
                    "Account code must be specified for all line items on an approved document.",
                ));
            }
            // Tax.
            let tax_type = if lat == "NoTax" {
                Some("NONE".to_string())
            } else {
                l.tax_type
                    .clone()
                    .filter(|t| !t.is_empty())
                    .or_else(|| usable.map(|a| a.tax_type.clone()).filter(|t| !t.is_empty()))
                    .or_else(|| Some(if sales { "OUTPUT2" } else { "INPUT2" }.to_string()))
            };
            let rate = match tax_type.as_deref().map(|tt| {
                self.t
                    .tax_rates
                    .iter()
                    .find(|r| r.tax_type.eq_ignore_ascii_case(tt))
            }) {
                Some(Some(r))
                    if r.status == "ACTIVE"
                        && (if sales {
                            r.can_apply_to_revenue
                        } else {
                            r.can_apply_to_expenses || r.can_apply_to_assets
                        }) =>
                {
                    r.effective_rate
                }
                _ => {
                    line_errors.push(Message::new(format!(
                        "The TaxType code '{}' does not exist or cannot be used for this type of transaction.",
                        tax_type.clone().unwrap_or_default()
                    )));
                    Decimal::ZERO
                }
            };
            let rate = rate / Decimal::ONE_HUNDRED;
            let (line_tax, net) = match lat {
                "Inclusive" => {
                    let t = l
                        .tax_amount
                        .map(|t| round2(t, s))
                        .unwrap_or_else(|| round2(computed - computed / (Decimal::ONE + rate), s));
                    (t, computed - t)
                }
                "NoTax" => (Decimal::ZERO, computed),
                _ => (
                    l.tax_amount
                        .map(|t| round2(t, s))
                        .unwrap_or_else(|| round2(computed * rate, s)),
                    computed,
                ),
            };
            sub += net;
            tax += line_tax;
            // Tracking.
            let tracking_in = l.tracking.as_deref().unwrap_or_default();
            if tracking_in.len() > 2 {
                line_errors.push(Message::new(
                    "A line item can have at most 2 tracking categories.",
                ));
            }
            let mut tracking = Vec::new();
            for tr in tracking_in {
                let cat = self.t.tracking_categories.iter().find(|c| {
                    tr.tracking_category_id
                        .is_some_and(|id| id == c.tracking_category_id)
                        || tr
                            .name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&c.name))
                });
                let label = tr
                    .name
                    .clone()
                    .or(tr.tracking_category_id.map(|i| i.to_string()))
                    .unwrap_or_default();
                match cat {
                    Some(c) if c.status == "ACTIVE" => {
                        let opt = c.options.iter().find(|o| {
                            tr.tracking_option_id
                                .is_some_and(|id| id == o.tracking_option_id)
                                || tr
                                    .option
                                    .as_deref()
                                    .is_some_and(|n| n.eq_ignore_ascii_case(&o.name))
                        });
                        match opt {
                            Some(o) if o.status == "ACTIVE" => tracking.push(LineTracking {
                                tracking_category_id: c.tracking_category_id,
                                tracking_option_id: o.tracking_option_id,
                                name: c.name.clone(),
                                option: o.name.clone(),
                            }),
                            _ => line_errors.push(Message::new(format!(
                                "The TrackingOption '{}' does not exist or is not active for TrackingCategory '{}'.",
                                tr.option.clone().or(tr.tracking_option_id.map(|i| i.to_string())).unwrap_or_default(),
                                c.name
                            ))),
                        }
                    }
                    _ => line_errors.push(Message::new(format!(
                        "The TrackingCategory '{label}' does not exist or is not active."
                    ))),
                }
            }
            if l.description
                .as_ref()
                .is_some_and(|d| d.chars().count() > 4000)
            {
                line_errors.push(Message::new("Description must be 4000 characters or fewer"));
            }
            let line_item_id = l
                .line_item_id
                .filter(|id| existing.iter().any(|e| e.line_item_id == *id))
                .unwrap_or_else(Uuid::new_v4);
            errors.extend(line_errors.iter().cloned());
            out.push(LineItem {
                line_item_id,
                description: l.description.clone(),
                quantity: qty,
                unit_amount: unit,
                item_code: l.item_code.clone(),
                account_code,
                account_id,
                tax_type,
                tax_amount: line_tax,
                line_amount: computed,
                discount_rate: l.discount_rate,
                discount_amount: l.discount_amount,
                tracking,
                validation_errors: line_errors,
            });
        }
        let total = sub + tax;
        let discount = (!disc_total.is_zero()).then_some(disc_total);
        (out, sub, tax, total, discount)
    }

    // ---------- invoices ----------

    fn invoice_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: DocIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let existing_idx = match target {
            Some(id) => self.t.invoices.iter().position(|i| i.invoice_id == id),
            None if upsert => match input.invoice_id {
                Some(id) => {
                    let p = self.t.invoices.iter().position(|i| i.invoice_id == id);
                    if p.is_none() {
                        errors.push(Message::new(format!("Invoice {id} could not be found")));
                    }
                    p
                }
                None => input.invoice_number.as_deref().and_then(|n| {
                    self.t.invoices.iter().position(|i| {
                        i.kind == "ACCREC"
                            && i.invoice_number.eq_ignore_ascii_case(n)
                            && i.status != "DELETED"
                            && i.status != "VOIDED"
                    })
                }),
            },
            None => None,
        };
        let existing = existing_idx.map(|i| self.t.invoices[i].clone());
        let now = Utc::now();
        if let Some(e) = bad_date(&input.date).or(bad_date(&input.due_date)) {
            errors.push(Message::new(e));
        }
        let kind = input
            .kind
            .clone()
            .map(|k| k.to_ascii_uppercase())
            .or(existing.as_ref().map(|e| e.kind.clone()))
            .unwrap_or_default();
        if kind.is_empty() {
            errors.push(Message::new("Invoice Type must be specified"));
        } else if kind != "ACCREC" && kind != "ACCPAY" {
            errors.push(Message::new(format!(
                "'{kind}' is not a valid invoice Type"
            )));
        }
        let sales = kind != "ACCPAY";
        // Status transitions.
        let old_status = existing.as_ref().map(|e| e.status.clone());
        let new_status = input
            .status
            .clone()
            .map(|s| s.to_ascii_uppercase())
            .or(old_status.clone())
            .unwrap_or_else(|| "DRAFT".into());
        let has_money = existing
            .as_ref()
            .is_some_and(|e| !e.payments.is_empty() || !e.credit_notes.is_empty());
        if ![
            "DRAFT",
            "SUBMITTED",
            "AUTHORISED",
            "VOIDED",
            "DELETED",
            "PAID",
        ]
        .contains(&new_status.as_str())
        {
            errors.push(Message::new(format!(
                "'{new_status}' is not a valid invoice Status"
            )));
        }
        match old_status.as_deref() {
            None => {
                if ["PAID", "VOIDED", "DELETED"].contains(&new_status.as_str()) {
                    errors.push(Message::new(format!(
                        "An invoice cannot be created with status {new_status}"
                    )));
                }
            }
            Some("DRAFT") | Some("SUBMITTED") => {
                if new_status == "VOIDED" || new_status == "PAID" {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some("AUTHORISED") => {
                if has_money && (new_status != "AUTHORISED" || input.line_items.is_some()) {
                    errors.push(Message::new("This document cannot be edited as it has a payment or credit note allocated to it."));
                } else if ["DRAFT", "SUBMITTED", "DELETED", "PAID"].contains(&new_status.as_str()) {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some("PAID") => {
                if new_status == "VOIDED" || has_money {
                    errors.push(Message::new("This document cannot be edited as it has a payment or credit note allocated to it."));
                } else {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some(_) => errors.push(Message::new("Invoice not of valid status for modification")),
        }
        let contact = match (&input.contact, &existing) {
            (None, Some(e)) => e.contact.clone(),
            _ => self.resolve_contact(&input.contact, &mut errors),
        };
        let lat = input
            .line_amount_types
            .clone()
            .or(existing.as_ref().map(|e| e.line_amount_types.clone()))
            .unwrap_or_else(|| "Exclusive".into());
        let lat = match lat.to_ascii_lowercase().as_str() {
            "exclusive" => "Exclusive".to_string(),
            "inclusive" => "Inclusive".to_string(),
            "notax" => "NoTax".to_string(),
            _ => {
                errors.push(Message::new(format!(
                    "'{lat}' is not a valid LineAmountTypes value"
                )));
                "Exclusive".to_string()
            }
        };
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().map(|e| e.date))
            .unwrap_or_else(|| self.t.today());
        let due_date = input
            .due_date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().and_then(|e| e.due_date));
        if new_status != "DELETED" && new_status != "VOIDED" {
            self.check_lock(date, &mut errors);
        }
        let (currency_code, currency_rate) =
            match (&input.currency_code, input.currency_rate, &existing) {
                (None, None, Some(e)) => (e.currency_code.clone(), e.currency_rate),
                _ => self.currency(&input.currency_code, input.currency_rate, &mut errors),
            };
        let approving = ["AUTHORISED", "SUBMITTED"].contains(&new_status.as_str());
        let existing_lines = existing
            .as_ref()
            .map(|e| e.line_items.clone())
            .unwrap_or_default();
        let (lines, sub, tax, total, discount) = match (&input.line_items, &existing) {
            (None, Some(e)) if input.line_amount_types.is_none() => (
                e.line_items.clone(),
                e.sub_total,
                e.total_tax,
                e.total,
                e.total_discount,
            ),
            (None, Some(e)) => {
                let relined: Vec<LineIn> = e.line_items.iter().map(line_in_from).collect();
                self.compute_lines(
                    &relined,
                    &existing_lines,
                    &lat,
                    sales,
                    sales,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
            (lines, _) => {
                let lines = lines.as_deref().unwrap_or_default();
                if lines.is_empty() && existing.is_none() {
                    errors.push(Message::new(
                        "An invoice must contain at least one line item",
                    ));
                }
                self.compute_lines(
                    lines,
                    &existing_lines,
                    &lat,
                    sales,
                    sales,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
        };
        // Numbering and uniqueness.
        let number = input
            .invoice_number
            .clone()
            .or(existing.as_ref().map(|e| e.invoice_number.clone()));
        let my_id = existing.as_ref().map(|e| e.invoice_id);
        if let Some(n) = &number {
            if n.chars().count() > 255 {
                errors.push(Message::new(
                    "Invoice Number must be 255 characters or fewer",
                ));
            }
            if kind == "ACCREC"
                && self.t.invoices.iter().any(|i| {
                    Some(i.invoice_id) != my_id
                        && i.kind == "ACCREC"
                        && i.invoice_number.eq_ignore_ascii_case(n)
                        && i.status != "DELETED"
                })
            {
                errors.push(Message::new("Invoice # must be unique."));
            }
        }
        let (amount_paid, amount_credited) = existing
            .as_ref()
            .map(|e| (e.amount_paid, e.amount_credited))
            .unwrap_or_default();
        if total < amount_paid + amount_credited {
            errors.push(Message::new(
                "The invoice total cannot be less than the amount already paid or credited.",
            ));
        }
        let mut inv = Invoice {
            kind: kind.clone(),
            invoice_id: my_id.unwrap_or(EMPTY),
            invoice_number: number.clone().unwrap_or_default(),
            reference: input
                .reference
                .clone()
                .or(existing.as_ref().and_then(|e| e.reference.clone())),
            contact,
            date,
            due_date,
            status: new_status.clone(),
            line_amount_types: lat,
            line_items: lines,
            sub_total: sub,
            total_tax: tax,
            total,
            total_discount: discount,
            currency_code,
            currency_rate,
            amount_due: total - amount_paid - amount_credited,
            amount_paid,
            amount_credited,
            fully_paid_on_date: existing.as_ref().and_then(|e| e.fully_paid_on_date),
            payments: existing
                .as_ref()
                .map(|e| e.payments.clone())
                .unwrap_or_default(),
            credit_notes: existing
                .as_ref()
                .map(|e| e.credit_notes.clone())
                .unwrap_or_default(),
            url: input
                .url
                .clone()
                .or(existing.as_ref().and_then(|e| e.url.clone())),
            sent_to_contact: input
                .sent_to_contact
                .or(existing.as_ref().map(|e| e.sent_to_contact))
                .unwrap_or(false),
            is_discounted: discount.is_some(),
            has_attachments: false,
            has_errors: false,
            updated_date_utc: now,
            updated_date_utc_string: now,
            outcome: Outcome::default(),
        };
        if new_status == "VOIDED" || new_status == "DELETED" {
            inv.amount_due = Decimal::ZERO;
        }
        if !errors.is_empty() {
            inv.has_errors = true;
            inv.invoice_id = my_id.or(input.invoice_id).unwrap_or(EMPTY);
            inv.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings,
            };
            return (self.render_invoice(&inv), false);
        }
        let event = match existing_idx {
            Some(i) => {
                self.t.invoices[i] = inv.clone();
                EventKind::Update
            }
            None => {
                inv.invoice_id = Uuid::new_v4();
                if number.is_none() {
                    inv.invoice_number = if kind == "ACCREC" {
                        self.next_invoice_number()
                    } else {
                        String::new()
                    };
                }
                self.t.invoices.push(inv.clone());
                EventKind::Create
            }
        };
        if sales && approving {
            self.mark_contact(inv.contact.contact_id, true);
        } else if approving {
            self.mark_contact(inv.contact.contact_id, false);
        }
        self.touch(Category::Invoice, event, inv.invoice_id);
        inv.outcome.warnings = warnings;
        if summarize_off {
            inv.outcome.status_attribute_string = Some(
                if inv.outcome.warnings.is_empty() {
                    "OK"
                } else {
                    "WARNING"
                }
                .into(),
            );
        }
        (self.render_invoice(&inv), true)
    }

    fn next_invoice_number(&mut self) -> String {
        loop {
            let n = format!("INV-{:04}", self.t.next_invoice_number);
            self.t.next_invoice_number += 1;
            if !self
                .t
                .invoices
                .iter()
                .any(|i| i.invoice_number.eq_ignore_ascii_case(&n))
            {
                return n;
            }
        }
    }

    fn mark_contact(&mut self, id: Uuid, customer: bool) {
        if let Some(c) = self.t.contacts.iter_mut().find(|c| c.contact_id == id) {
            if customer {
                c.is_customer = true;
            } else {
                c.is_supplier = true;
            }
        }
    }

    // ---------- credit notes ----------

    fn credit_note_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: DocIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let existing_idx = match target.or(if upsert { input.credit_note_id } else { None }) {
            Some(id) => {
                let p = self
                    .t
                    .credit_notes
                    .iter()
                    .position(|c| c.credit_note_id == id);
                if p.is_none() {
                    errors.push(Message::new(format!("Credit note {id} could not be found")));
                }
                p
            }
            None => None,
        };
        let existing = existing_idx.map(|i| self.t.credit_notes[i].clone());
        if let Some(e) = bad_date(&input.date) {
            errors.push(Message::new(e));
        }
        let kind = input
            .kind
            .clone()
            .map(|k| k.to_ascii_uppercase())
            .or(existing.as_ref().map(|e| e.kind.clone()))
            .unwrap_or_default();
        if kind != "ACCRECCREDIT" && kind != "ACCPAYCREDIT" {
            errors.push(Message::new(
                "Credit note Type must be ACCRECCREDIT or ACCPAYCREDIT",
            ));
        }
        let sales = kind != "ACCPAYCREDIT";
        let old_status = existing.as_ref().map(|e| e.status.clone());
        let new_status = input
            .status
            .clone()
            .map(|s| s.to_ascii_uppercase())
            .or(old_status.clone())
            .unwrap_or_else(|| "DRAFT".into());
        let has_money = existing
            .as_ref()
            .is_some_and(|e| !e.allocations.is_empty() || !e.payments.is_empty());
        match old_status.as_deref() {
            None if ["PAID", "VOIDED", "DELETED"].contains(&new_status.as_str()) => {
                errors.push(Message::new(format!("A credit note cannot be created with status {new_status}")))
            }
            None => {}
            Some("DRAFT") | Some("SUBMITTED") if new_status == "VOIDED" || new_status == "PAID" => {
                errors.push(Message::new("Document not of valid status for modification"))
            }
            Some("DRAFT") | Some("SUBMITTED") => {}
            Some("AUTHORISED") if has_money && (new_status != "AUTHORISED" || input.line_items.is_some()) => errors.push(
                Message::new("This document cannot be edited as it has a payment or credit note allocated to it."),
            ),
            Some("AUTHORISED") if ["DRAFT", "SUBMITTED", "DELETED", "PAID"].contains(&new_status.as_str()) => {
                errors.push(Message::new("Document not of valid status for modification"))
            }
            Some("AUTHORISED") => {}
            Some(_) => errors.push(Message::new("Document not of valid status for modification")),
        }
        let contact = match (&input.contact, &existing) {
            (None, Some(e)) => e.contact.clone(),
            _ => self.resolve_contact(&input.contact, &mut errors),
        };
        let lat = input
            .line_amount_types
            .clone()
            .or(existing.as_ref().map(|e| e.line_amount_types.clone()))
            .unwrap_or_else(|| "Exclusive".into());
        let lat = match lat.to_ascii_lowercase().as_str() {
            "inclusive" => "Inclusive",
            "notax" => "NoTax",
            _ => "Exclusive",
        }
        .to_string();
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().map(|e| e.date))
            .unwrap_or_else(|| self.t.today());
        if new_status != "DELETED" && new_status != "VOIDED" {
            self.check_lock(date, &mut errors);
        }
        let (currency_code, currency_rate) =
            match (&input.currency_code, input.currency_rate, &existing) {
                (None, None, Some(e)) => (e.currency_code.clone(), e.currency_rate),
                _ => self.currency(&input.currency_code, input.currency_rate, &mut errors),
            };
        let approving = ["AUTHORISED", "SUBMITTED"].contains(&new_status.as_str());
        let existing_lines = existing
            .as_ref()
            .map(|e| e.line_items.clone())
            .unwrap_or_default();
        let (lines, sub, tax, total, _) = match (&input.line_items, &existing) {
            (None, Some(e)) => (
                e.line_items.clone(),
                e.sub_total,
                e.total_tax,
                e.total,
                None,
            ),
            (lines, _) => {
                let lines = lines.as_deref().unwrap_or_default();
                self.compute_lines(
                    lines,
                    &existing_lines,
                    &lat,
                    sales,
                    false,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
        };
        let number = input
            .credit_note_number
            .clone()
            .or(existing.as_ref().map(|e| e.credit_note_number.clone()));
        let my_id = existing.as_ref().map(|e| e.credit_note_id);
        if let Some(n) = &number
            && kind == "ACCRECCREDIT"
            && self.t.credit_notes.iter().any(|c| {
                Some(c.credit_note_id) != my_id
                    && c.kind == kind
                    && c.credit_note_number.eq_ignore_ascii_case(n)
                    && c.status != "DELETED"
            })
        {
            errors.push(Message::new("Credit Note # must be unique."));
        }
        let used = existing
            .as_ref()
            .map(|e| e.total - e.remaining_credit)
            .unwrap_or_default();
        let now = Utc::now();
        let mut cn = CreditNote {
            kind: kind.clone(),
            credit_note_id: my_id.unwrap_or(EMPTY),
            credit_note_number: number.clone().unwrap_or_default(),
            reference: input
                .reference
                .clone()
                .or(existing.as_ref().and_then(|e| e.reference.clone())),
            contact,
            date,
            due_date: input.due_date.as_deref().and_then(parse_day),
            status: new_status.clone(),
            line_amount_types: lat,
            line_items: lines,
            sub_total: sub,
            total_tax: tax,
            total,
            currency_code,
            currency_rate,
            remaining_credit: if new_status == "VOIDED" || new_status == "DELETED" {
                Decimal::ZERO
            } else {
                total - used
            },
            fully_paid_on_date: existing.as_ref().and_then(|e| e.fully_paid_on_date),
            allocations: existing
                .as_ref()
                .map(|e| e.allocations.clone())
                .unwrap_or_default(),
            payments: existing
                .as_ref()
                .map(|e| e.payments.clone())
                .unwrap_or_default(),
            sent_to_contact: false,
            has_attachments: false,
            has_errors: false,
            updated_date_utc: now,
            updated_date_utc_string: now,
            outcome: Outcome::default(),
        };
        if !errors.is_empty() {
            cn.has_errors = true;
            cn.credit_note_id = my_id.or(input.credit_note_id).unwrap_or(EMPTY);
            cn.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings,
            };
            return (self.render_credit_note(&cn), false);
        }
        let event = match existing_idx {
            Some(i) => {
                self.t.credit_notes[i] = cn.clone();
                EventKind::Update
            }
            None => {
                cn.credit_note_id = Uuid::new_v4();
                if number.is_none() {
                    cn.credit_note_number = format!("CN-{:04}", self.t.next_credit_note_number);
                    self.t.next_credit_note_number += 1;
                }
                self.t.credit_notes.push(cn.clone());
                EventKind::Create
            }
        };
        self.touch(Category::CreditNote, event, cn.credit_note_id);
        cn.outcome.warnings = warnings;
        if summarize_off {
            cn.outcome.status_attribute_string = Some("OK".into());
        }
        (self.render_credit_note(&cn), true)
    }

    fn allocation_element(
        &mut self,
        raw: &RawValue,
        _upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: AllocationIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let Some(ci) = target.and_then(|id| {
            self.t
                .credit_notes
                .iter()
                .position(|c| c.credit_note_id == id)
        }) else {
            return (error_json("Credit note could not be found"), false);
        };
        let amount = input.amount.unwrap_or_default();
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .unwrap_or_else(|| self.t.today());
        let inv_idx = input.invoice.as_ref().and_then(|r| {
            self.t.invoices.iter().position(|i| {
                r.invoice_id.is_some_and(|id| id == i.invoice_id)
                    || r.invoice_number
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&i.invoice_number))
            })
        });
        let cn = self.t.credit_notes[ci].clone();
        if cn.status != "AUTHORISED" {
            errors.push(Message::new(
                "Credit note must be AUTHORISED before it can be allocated",
            ));
        }
        if amount <= Decimal::ZERO {
            errors.push(Message::new("Allocation amount must be greater than zero"));
        }
        if amount > cn.remaining_credit {
            errors.push(Message::new(
                "The amount being allocated exceeds the remaining credit on the credit note",
            ));
        }
        let inv_ref = match inv_idx {
            None => {
                errors.push(Message::new("Invoice could not be found"));
                InvoiceRef {
                    invoice_id: EMPTY,
                    invoice_number: String::new(),
                    kind: None,
                    status: None,
                    amount_due: None,
                    amount_paid: None,
                    total: None,
                    currency_code: None,
                }
            }
            Some(ii) => {
                let inv = &self.t.invoices[ii];
                if inv.status != "AUTHORISED" {
                    errors.push(Message::new(
                        "Invoice must be AUTHORISED to allocate a credit note to it",
                    ));
                }
                if amount > inv.amount_due {
                    errors.push(Message::new(
                        "The amount being allocated exceeds the amount due on the invoice",
                    ));
                }
                if inv.currency_code != cn.currency_code {
                    errors.push(Message::new(
                        "The credit note and invoice must be in the same currency",
                    ));
                }
                if (cn.kind == "ACCRECCREDIT") != (inv.kind == "ACCREC") {
                    errors.push(Message::new(
                        "The credit note type does not match the invoice type",
                    ));
                }
                invoice_ref(inv)
            }
        };
        self.check_lock(date, &mut errors);
        let mut alloc = Allocation {
            allocation_id: EMPTY,
            invoice: inv_ref,
            amount,
            date,
            is_deleted: false,
            outcome: Outcome::default(),
        };
        if !errors.is_empty() {
            alloc.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&alloc), false);
        }
        let ii = inv_idx.unwrap_or_default();
        alloc.allocation_id = Uuid::new_v4();
        let now = Utc::now();
        {
            let inv = &mut self.t.invoices[ii];
            inv.amount_credited += amount;
            inv.amount_due -= amount;
            inv.credit_notes.push(CreditNoteRef {
                credit_note_id: cn.credit_note_id,
                credit_note_number: cn.credit_note_number.clone(),
                applied_amount: amount,
                total: cn.total,
                date,
            });
            if inv.amount_due.is_zero() {
                inv.status = "PAID".into();
                inv.fully_paid_on_date = Some(date);
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            alloc.invoice = invoice_ref(inv);
        }
        {
            let c = &mut self.t.credit_notes[ci];
            c.remaining_credit -= amount;
            c.allocations.push(alloc.clone());
            if c.remaining_credit.is_zero() {
                c.status = "PAID".into();
                c.fully_paid_on_date = Some(date);
            }
            c.updated_date_utc = now;
            c.updated_date_utc_string = now;
        }
        let inv_id = self.t.invoices[ii].invoice_id;
        self.touch(Category::CreditNote, EventKind::Update, cn.credit_note_id);
        self.touch(Category::Invoice, EventKind::Update, inv_id);
        if summarize_off {
            alloc.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&alloc), true)
    }

    fn delete_allocation(&mut self, cn_id: &str, alloc_id: &str) -> Resp {
        let Some(ci) = self
            .t
            .credit_notes
            .iter()
            .position(|c| c.credit_note_id.to_string() == cn_id)
        else {
            return not_found();
        };
        let Some(ai) = self.t.credit_notes[ci]
            .allocations
            .iter()
            .position(|a| a.allocation_id.to_string() == alloc_id && !a.is_deleted)
        else {
            return not_found();
        };
        let now = Utc::now();
        let mut alloc = self.t.credit_notes[ci].allocations.remove(ai);
        let cn = &mut self.t.credit_notes[ci];
        cn.remaining_credit += alloc.amount;
        if cn.status == "PAID" {
            cn.status = "AUTHORISED".into();
            cn.fully_paid_on_date = None;
        }
        cn.updated_date_utc = now;
        cn.updated_date_utc_string = now;
        let cn_id = cn.credit_note_id;
        if let Some(inv) = self
            .t
            .invoices
            .iter_mut()
            .find(|i| i.invoice_id == alloc.invoice.invoice_id)
        {
            inv.amount_credited -= alloc.amount;
            inv.amount_due += alloc.amount;
            if let Some(p) = inv
                .credit_notes
                .iter()
                .position(|c| c.credit_note_id == cn_id && c.applied_amount == alloc.amount)
            {
                inv.credit_notes.remove(p);
            }
            if inv.status == "PAID" {
                inv.status = "AUTHORISED".into();
                inv.fully_paid_on_date = None;
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            alloc.invoice = invoice_ref(inv);
        }
        alloc.is_deleted = true;
        self.touch(Category::CreditNote, EventKind::Update, cn_id);
        envelope(self.provider, "Allocations", &[ser(&alloc)], None::<&()>)
    }

    // ---------- payments ----------

    fn payment_element(
        &mut self,
        raw: &RawValue,
        _upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: PaymentIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if let Some(id) = target.or(input.payment_id.filter(|_| input.status.is_some())) {
            return self.delete_payment(id, &input, summarize_off);
        }
        let mut errors = Vec::new();
        if let Some(e) = bad_date(&input.date) {
            errors.push(Message::new(e));
        }
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .unwrap_or_else(|| self.t.today());
        let amount = input.amount.unwrap_or_default();
        if amount <= Decimal::ZERO {
            errors.push(Message::new("Payment amount must be greater than zero"));
        }
        let inv_number = input
            .invoice
            .as_ref()
            .and_then(|r| r.invoice_number.clone())
            .or(input.invoice_number.clone());
        let inv_id = input.invoice.as_ref().and_then(|r| r.invoice_id);
        let cn_number = input
            .credit_note
            .as_ref()
            .and_then(|r| r.credit_note_number.clone())
            .or(input.credit_note_number.clone());
        let cn_id = input.credit_note.as_ref().and_then(|r| r.credit_note_id);
        let acct_code = input
            .account
            .as_ref()
            .and_then(|a| a.code.clone())
            .or(input.code.clone());
        let acct_id = input.account.as_ref().and_then(|a| a.account_id);
        let account = self.t.accounts.iter().find(|a| {
            acct_id.is_some_and(|id| id == a.account_id)
                || acct_code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&a.code))
        });
        let account_ref = match account {
            Some(a)
                if a.status == "ACTIVE" && (a.kind == "BANK" || a.enable_payments_to_account) =>
            {
                AccountRef {
                    account_id: a.account_id,
                    code: a.code.clone(),
                }
            }
            Some(a) => {
                errors.push(Message::new(format!(
                    "Account {} is not a bank account and does not have payments enabled",
                    a.code
                )));
                AccountRef {
                    account_id: a.account_id,
                    code: a.code.clone(),
                }
            }
            None => {
                errors.push(Message::new("Account could not be found"));
                AccountRef {
                    account_id: EMPTY,
                    code: acct_code.clone().unwrap_or_default(),
                }
            }
        };
        self.check_lock(date, &mut errors);
        let inv_idx = if inv_id.is_some() || inv_number.is_some() {
            self.t.invoices.iter().position(|i| {
                inv_id.is_some_and(|id| id == i.invoice_id)
                    || (inv_id.is_none()
                        && inv_number
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&i.invoice_number)))
            })
        } else {
            None
        };
        let cn_idx = if inv_idx.is_none() && (cn_id.is_some() || cn_number.is_some()) {
            self.t.credit_notes.iter().position(|c| {
                cn_id.is_some_and(|id| id == c.credit_note_id)
                    || (cn_id.is_none()
                        && cn_number
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&c.credit_note_number)))
            })
        } else {
            None
        };
        let now = Utc::now();
        let mut payment = Payment {
            payment_id: EMPTY,
            date,
            amount,
            bank_amount: amount,
            currency_rate: Decimal::ONE,
            reference: input.reference.clone(),
            is_reconciled: input.is_reconciled.unwrap_or(false),
            status: "AUTHORISED".into(),
            payment_type: "ACCRECPAYMENT".into(),
            account: account_ref,
            invoice: None,
            credit_note: None,
            has_account: true,
            has_validation_errors: false,
            updated_date_utc: now,
            outcome: Outcome::default(),
        };
        let (outstanding, status, currency, doc_rate) = match (inv_idx, cn_idx) {
            (Some(i), _) => {
                let inv = &self.t.invoices[i];
                payment.invoice = Some(invoice_ref(inv));
                payment.payment_type = if inv.kind == "ACCPAY" {
                    "ACCPAYPAYMENT"
                } else {
                    "ACCRECPAYMENT"
                }
                .into();
                (
                    inv.amount_due,
                    inv.status.clone(),
                    inv.currency_code.clone(),
                    inv.currency_rate,
                )
            }
            (None, Some(c)) => {
                let cn = &self.t.credit_notes[c];
                payment.credit_note = Some(CreditNoteLink {
                    credit_note_id: cn.credit_note_id,
                    credit_note_number: cn.credit_note_number.clone(),
                    remaining_credit: Some(cn.remaining_credit),
                    status: Some(cn.status.clone()),
                });
                payment.payment_type = if cn.kind == "ACCPAYCREDIT" {
                    "APCREDITPAYMENT"
                } else {
                    "ARCREDITPAYMENT"
                }
                .into();
                (
                    cn.remaining_credit,
                    cn.status.clone(),
                    cn.currency_code.clone(),
                    cn.currency_rate,
                )
            }
            (None, None) => {
                errors.push(Message::new(if inv_id.is_some() || inv_number.is_some() {
                    "Invoice could not be found"
                } else if cn_id.is_some() || cn_number.is_some() {
                    "Credit note could not be found"
                } else {
                    "You must specify an Invoice, CreditNote, Prepayment or Overpayment for the payment"
                }));
                (
                    Decimal::ZERO,
                    String::new(),
                    self.t.org.base_currency.clone(),
                    Decimal::ONE,
                )
            }
        };
        if (inv_idx.is_some() || cn_idx.is_some()) && status != "AUTHORISED" {
            errors.push(Message::new(
                "Payments can only be made against Authorised documents.",
            ));
        } else if amount > outstanding && (inv_idx.is_some() || cn_idx.is_some()) {
            errors.push(Message::new(
                "Payment amount exceeds the amount outstanding on this document",
            ));
        }
        if currency != self.t.org.base_currency {
            payment.currency_rate = input
                .currency_rate
                .or_else(|| self.t.daily_rates.get(&currency).copied())
                .unwrap_or(doc_rate);
            if !payment.currency_rate.is_zero() {
                payment.bank_amount = round2(amount / payment.currency_rate, self.settings);
            }
        }
        if !errors.is_empty() {
            payment.has_validation_errors = true;
            payment.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&payment), false);
        }
        payment.payment_id = Uuid::new_v4();
        let pref = PaymentRef {
            payment_id: payment.payment_id,
            date,
            amount,
            currency_rate: payment.currency_rate,
            reference: payment.reference.clone(),
            has_account: false,
            has_validation_errors: false,
        };
        if let Some(i) = inv_idx {
            let inv = &mut self.t.invoices[i];
            inv.amount_paid += amount;
            inv.amount_due -= amount;
            inv.payments.push(pref);
            if inv.amount_due.is_zero() {
                inv.status = "PAID".into();
                inv.fully_paid_on_date = Some(date);
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            payment.invoice = Some(invoice_ref(inv));
            let id = inv.invoice_id;
            self.touch(Category::Invoice, EventKind::Update, id);
        } else if let Some(c) = cn_idx {
            let cn = &mut self.t.credit_notes[c];
            cn.remaining_credit -= amount;
            cn.payments.push(pref);
            if cn.remaining_credit.is_zero() {
                cn.status = "PAID".into();
                cn.fully_paid_on_date = Some(date);
            }
            cn.updated_date_utc = now;
            cn.updated_date_utc_string = now;
            payment.credit_note = Some(CreditNoteLink {
                credit_note_id: cn.credit_note_id,
                credit_note_number: cn.credit_note_number.clone(),
                remaining_credit: Some(cn.remaining_credit),
                status: Some(cn.status.clone()),
            });
            let id = cn.credit_note_id;
            self.touch(Category::CreditNote, EventKind::Update, id);
        }
        self.t.payments.push(payment.clone());
        if summarize_off {
            payment.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&payment), true)
    }

    fn delete_payment(
        &mut self,
        id: Uuid,
        input: &PaymentIn,
        summarize_off: bool,
    ) -> (String, bool) {
        let Some(pi) = self.t.payments.iter().position(|p| p.payment_id == id) else {
            return (error_json("Payment could not be found"), false);
        };
        let mut p = self.t.payments[pi].clone();
        let wanted = input
            .status
            .clone()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut errors = Vec::new();
        if wanted != "DELETED" {
            errors.push(Message::new(
                "Payments can only be deleted; send Status DELETED",
            ));
        } else if p.status == "DELETED" {
            errors.push(Message::new("This payment has already been deleted"));
        }
        if !errors.is_empty() {
            p.has_validation_errors = true;
            p.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&p), false);
        }
        let now = Utc::now();
        p.status = "DELETED".into();
        p.updated_date_utc = now;
        if let Some(r) = &p.invoice
            && let Some(inv) = self
                .t
                .invoices
                .iter_mut()
                .find(|i| i.invoice_id == r.invoice_id)
        {
            inv.amount_paid -= p.amount;
            inv.amount_due += p.amount;
            inv.payments.retain(|x| x.payment_id != id);
            if inv.status == "PAID" {
                inv.status = "AUTHORISED".into();
                inv.fully_paid_on_date = None;
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            p.invoice = Some(invoice_ref(inv));
            let iid = inv.invoice_id;
            self.touch(Category::Invoice, EventKind::Update, iid);
        }
        if let Some(r) = &p.credit_note
            && let Some(cn) = self
                .t
                .credit_notes
                .iter_mut()
                .find(|c| c.credit_note_id == r.credit_note_id)
        {
            cn.remaining_credit += p.amount;
            cn.payments.retain(|x| x.payment_id != id);
            if cn.status == "PAID" {
                cn.status = "AUTHORISED".into();
                cn.fully_paid_on_date = None;
            }
            cn.updated_date_utc = now;
            cn.updated_date_utc_string = now;
            let cid = cn.credit_note_id;
            self.touch(Category::CreditNote, EventKind::Update, cid);
        }
        self.t.payments[pi] = p.clone();
        if summarize_off {
            p.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&p), true)
    }

    // ---------- settings writes ----------

    fn put_currency(&mut self) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            code: String,
        }
        let els = match elements(self.req.body, "Currencies") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(c)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("A currency Code is required");
        };
        let code = c.code.to_ascii_uppercase();
        if code.len() != 3 || !code.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return bad_request(&format!("'{code}' is not a valid currency code"));
        }
        if !self.t.currencies.iter().any(|x| x.code == code) {
            self.t.currencies.push(Currency {
                code: code.clone(),
                description: String::new(),
            });
        }
        let cur = self.t.currencies.iter().find(|x| x.code == code).cloned();
        self.one("Currencies", &cur)
    }

    fn put_tracking_category(&mut self) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            name: String,
        }
        let els = match elements(self.req.body, "TrackingCategories") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(c)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("A tracking category Name is required");
        };
        let name = c.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return bad_request("Tracking category Name must be 1 to 100 characters");
        }
        if self
            .t
            .tracking_categories
            .iter()
            .any(|x| x.status == "ACTIVE" && x.name.eq_ignore_ascii_case(&name))
        {
            return bad_request(&format!(
                "A tracking category named '{name}' already exists"
            ));
        }
        if self
            .t
            .tracking_categories
            .iter()
            .filter(|x| x.status == "ACTIVE")
            .count()
            >= 2
        {
            return bad_request("An organisation can have at most 2 active tracking categories");
        }
        let cat = TrackingCategory {
            tracking_category_id: Uuid::new_v4(),
            name,
            status: "ACTIVE".into(),
            options: vec![],
        };
        self.t.tracking_categories.push(cat.clone());
        self.one("TrackingCategories", &cat)
    }

    fn post_tracking_category(&mut self, id: &str) -> Resp {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct In {
            name: Option<String>,
            status: Option<String>,
        }
        let els = match elements(self.req.body, "TrackingCategories") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(input)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("Invalid tracking category");
        };
        let active = self
            .t
            .tracking_categories
            .iter()
            .filter(|x| x.status == "ACTIVE")
            .count();
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        if let Some(n) = input.name {
            cat.name = n;
        }
        if let Some(s) = input.status {
            let s = s.to_ascii_uppercase();
            if s == "ACTIVE" && cat.status != "ACTIVE" && active >= 2 {
                return bad_request(
                    "An organisation can have at most 2 active tracking categories",
                );
            }
            cat.status = s;
        }
        let cat = cat.clone();
        self.one("TrackingCategories", &cat)
    }

    /// Deletes a category or option. One in use on a document is archived instead, as Xero does.
    fn delete_tracking(&mut self, id: &str, opt: Option<&str>) -> Resp {
        let in_use = |cat: Uuid, opt: Option<Uuid>| {
            let used = |l: &LineItem| {
                l.tracking.iter().any(|t| {
                    t.tracking_category_id == cat && opt.is_none_or(|o| o == t.tracking_option_id)
                })
            };
            self.t
                .invoices
                .iter()
                .any(|i| i.line_items.iter().any(used))
                || self
                    .t
                    .credit_notes
                    .iter()
                    .any(|c| c.line_items.iter().any(used))
        };
        let Some(ci) = self
            .t
            .tracking_categories
            .iter()
            .position(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let cat_id = self.t.tracking_categories[ci].tracking_category_id;
        match opt {
            None => {
                let used = in_use(cat_id, None);
                let cat = &mut self.t.tracking_categories[ci];
                cat.status = if used { "ARCHIVED" } else { "DELETED" }.into();
                let out = cat.clone();
                if !used {
                    self.t.tracking_categories.remove(ci);
                }
                self.one("TrackingCategories", &out)
            }
            Some(o) => {
                let Some(oi) = self.t.tracking_categories[ci]
                    .options
                    .iter()
                    .position(|x| x.tracking_option_id.to_string() == o)
                else {
                    return not_found();
                };
                let opt_id = self.t.tracking_categories[ci].options[oi].tracking_option_id;
                let used = in_use(cat_id, Some(opt_id));
                let cat = &mut self.t.tracking_categories[ci];
                cat.options[oi].status = if used { "ARCHIVED" } else { "DELETED" }.into();
                let out = cat.options[oi].clone();
                if !used {
                    cat.options.remove(oi);
                }
                envelope(self.provider, "Options", &[ser(&out)], None::<&()>)
            }
        }
    }

    fn put_tracking_option(&mut self, id: &str) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            name: String,
        }
        let els = match elements(self.req.body, "Options") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let mut out = Vec::new();
        for raw in &els {
            let Ok(o) = parse_el::<In>(raw) else {
                return bad_request("A tracking option Name is required");
            };
            if cat
                .options
                .iter()
                .any(|x| x.name.eq_ignore_ascii_case(&o.name))
            {
                return bad_request(&format!(
                    "A tracking option named '{}' already exists",
                    o.name
                ));
            }
            let opt = TrackingOption {
                tracking_option_id: Uuid::new_v4(),
                name: o.name,
                status: "ACTIVE".into(),
            };
            cat.options.push(opt.clone());
            out.push(ser(&opt));
        }
        envelope(self.provider, "Options", &out, None::<&()>)
    }

    fn post_tracking_option(&mut self, id: &str, opt: &str) -> Resp {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct In {
            name: Option<String>,
            status: Option<String>,
        }
        let els = match elements(self.req.body, "Options") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(input)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("Invalid tracking option");
        };
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let Some(o) = cat
            .options
            .iter_mut()
            .find(|o| o.tracking_option_id.to_string() == opt)
        else {
            return not_found();
        };
        if let Some(n) = input.name {
            o.name = n;
        }
        if let Some(s) = input.status {
            o.status = s.to_ascii_uppercase();
        }
        let o = o.clone();
        envelope(self.provider, "Options", &[ser(&o)], None::<&()>)
    }
}

fn error_json(message: &str) -> String {
    ser(&Outcome {
        status_attribute_string: Some("ERROR".into()),
        validation_errors: vec![Message::new(message)],
        warnings: vec![],
    })
}

fn invoice_ref(i: &Invoice) -> InvoiceRef {
    InvoiceRef {
        invoice_id: i.invoice_id,
        invoice_number: i.invoice_number.clone(),
        kind: Some(i.kind.clone()),
        status: Some(i.status.clone()),
        amount_due: Some(i.amount_due),
        amount_paid: Some(i.amount_paid),
        total: Some(i.total),
        currency_code: Some(i.currency_code.clone()),
    }
}

fn line_in_from(l: &LineItem) -> LineIn {
    LineIn {
        line_item_id: Some(l.line_item_id),
        description: l.description.clone(),
        quantity: Some(l.quantity),
        unit_amount: Some(l.unit_amount),
        item_code: l.item_code.clone(),
        account_code: l.account_code.clone(),
        account_id: l.account_id,
        tax_type: l.tax_type.clone(),
        tax_amount: None,
        line_amount: None,
        discount_rate: l.discount_rate,
        discount_amount: l.discount_amount,
        tracking: Some(
            l.tracking
                .iter()
                .map(|t| TrackingIn {
                    tracking_category_id: Some(t.tracking_category_id),
                    tracking_option_id: Some(t.tracking_option_id),
                    name: None,
                    option: None,
                })
                .collect(),
        ),
    }
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => {
            match (
                parse_instant(x).filter(|_| x.starts_with("/Date")),
                parse_instant(y).filter(|_| y.starts_with("/Date")),
            ) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.to_lowercase().cmp(&y.to_lowercase()),
            }
        }
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let p: Option<Decimal> = x.to_string().parse().ok();
            let q: Option<Decimal> = y.to_string().parse().ok();
            p.cmp(&q)
        }
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
