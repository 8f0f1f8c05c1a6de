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

mod contacts;
mod input;
mod invoices;
mod payments;
mod settings;

use input::*;

/// Routes one authorised, counted call to its resource.
pub fn dispatch(app: &Arc<App>, tenant_id: Uuid, req: &Req, settings: &Settings) -> Resp {
    let mut events = Vec::new();
    let resp = {
        let mut store = app.store.lock().unwrap();
        let Some(t) = store.tenant_mut(tenant_id) else {
            return not_found();
        };
        let mut ctx = Ctx {
            deleting_batch: false,
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
    /// True while a whole batch payment is being deleted (its payments may then go).
    deleting_batch: bool,
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
                self.list("Accounts", docs, String::clone, false, true)
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
                self.list("TaxRates", docs, String::clone, false, false)
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
                self.list("Currencies", docs, String::clone, false, false)
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
                self.list("TrackingCategories", docs, String::clone, false, false)
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
            (Method::GET, ["batchpayments"]) => {
                let docs: Vec<_> = self
                    .t
                    .batch_payments
                    .iter()
                    .map(|b| (b, b.updated_date_utc))
                    .collect();
                self.list("BatchPayments", docs, |b| ser(*b), false, true)
            }
            (Method::GET, ["batchpayments", id]) => {
                let id = id.to_string();
                match self
                    .t
                    .batch_payments
                    .iter()
                    .find(|b| b.batch_payment_id.to_string() == id)
                {
                    Some(b) => self.one("BatchPayments", &b.clone()),
                    None => not_found(),
                }
            }
            (Method::PUT, ["batchpayments"]) => {
                self.batch("BatchPayments", Self::batch_payment_element, false)
            }
            (Method::POST, ["batchpayments", id]) => match id.parse::<Uuid>() {
                Ok(id) => self.delete_batch_payment(id),
                Err(_) => not_found(),
            },
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

    /// Filters (If-Modified-Since, where), orders and optionally pages documents. Without
    /// `where`/`order` only the requested page is rendered, so big tenants stay cheap.
    fn list<T>(
        &self,
        key: &str,
        docs: Vec<(T, chrono::DateTime<Utc>)>,
        render: impl Fn(&T) -> String,
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
        let (skip, take) = if paged {
            ((page - 1) * size, size)
        } else {
            (0, usize::MAX)
        };
        let wher = self.req.q("where").map(str::trim).filter(|w| !w.is_empty());
        let order = self.req.q("order").map(str::to_string);
        let (count, items): (usize, Vec<String>) = if wher.is_some() || order.is_some() {
            let mut vals: Vec<(String, Value)> = docs
                .iter()
                .map(|(d, _)| {
                    let s = render(d);
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
                let get = |v: &Value| {
                    v.as_object().and_then(|m| {
                        m.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&field))
                            .map(|(_, x)| x.clone())
                    })
                };
                vals.sort_by(|(_, a), (_, b)| {
                    let ord = cmp_values(get(a).as_ref(), get(b).as_ref());
                    if desc { ord.reverse() } else { ord }
                });
            }
            (
                vals.len(),
                vals.into_iter()
                    .skip(skip)
                    .take(take)
                    .map(|(s, _)| s)
                    .collect(),
            )
        } else {
            (
                docs.len(),
                docs.iter()
                    .skip(skip)
                    .take(take)
                    .map(|(d, _)| render(d))
                    .collect(),
            )
        };
        if !paged {
            return envelope(self.provider, key, &items, None::<&()>);
        }
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
            .map(|c| (c, c.updated_date_utc))
            .collect();
        // summaryOnly: the lighter object, without addresses, phones, people and terms.
        let summary = self.req.q("summaryonly") == Some("true");
        let render = |c: &&Contact| {
            if summary {
                let mut c = (*c).clone();
                c.addresses.clear();
                c.phones.clear();
                c.contact_persons.clear();
                c.payment_terms = None;
                ser(&c)
            } else {
                ser(*c)
            }
        };
        self.list("Contacts", docs, render, true, true)
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
            .map(|i| (i, i.updated_date_utc))
            .collect();
        let summary = self.req.q("summaryonly") == Some("true");
        let render = |i: &&Invoice| {
            if summary {
                let mut i = (*i).clone();
                i.line_items.clear();
                self.render_invoice(&i)
            } else {
                self.render_invoice(i)
            }
        };
        self.list("Invoices", docs, render, true, true)
    }

    fn list_credit_notes(&self) -> Resp {
        let docs: Vec<_> = self
            .t
            .credit_notes
            .iter()
            .map(|c| (c, c.updated_date_utc))
            .collect();
        self.list(
            "CreditNotes",
            docs,
            |c| self.render_credit_note(c),
            true,
            true,
        )
    }

    fn list_payments(&self) -> Resp {
        let docs: Vec<_> = self
            .t
            .payments
            .iter()
            .map(|p| (p, p.updated_date_utc))
            .collect();
        self.list(
            "Payments",
            docs,
            |p| ser(&self.render_payment(p)),
            true,
            true,
        )
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
