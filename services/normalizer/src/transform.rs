//! The pure transform: one raw Clarity webhook body → canonical events. No I/O, so it is what
//! the golden tests, the property tests, the fuzz target and the benchmark exercise.

use crate::address;
use crate::clarity::{self, Attributes, Envelope, EventType};
use crate::error::TransformError;
use crate::lines::{self, Kind, Line};
use ledgerline_contract::v1::{
    Address, Customer, CustomerEvent, CustomerEventType, EventMeta, Fault, LineItem, LineKind,
    Money, Order, OrderEvent, OrderEventType, Payment, Refund, RefundEvent, Suggestion, Totals,
};
use ledgerline_contract::{Schema, subjects};
use ledgerline_mapping::{Effective, Mapping};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The contract version this normalizer reads.
pub const API_VERSION: &str = "2026-11";

/// A canonical event and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    /// Subject to publish on.
    pub subject: String,
    /// `Nats-Msg-Id`: the raw event id, what was derived from it, and the mapping revision.
    pub event_id: String,
    /// The message.
    pub message: Message,
}

/// One of the three canonical messages.
// Built once per raw event and published at once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An order snapshot.
    Order(OrderEvent),
    /// A customer snapshot.
    Customer(CustomerEvent),
    /// A completed return.
    Refund(RefundEvent),
}

impl Message {
    /// The event's metadata.
    pub fn meta_mut(&mut self) -> &mut EventMeta {
        let meta = match self {
            Self::Order(m) => &mut m.meta,
            Self::Customer(m) => &mut m.meta,
            Self::Refund(m) => &mut m.meta,
        };
        meta.get_or_insert_with(EventMeta::default)
    }

    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message as _;
        match self {
            Self::Order(m) => m.encode_to_vec(),
            Self::Customer(m) => m.encode_to_vec(),
            Self::Refund(m) => m.encode_to_vec(),
        }
    }

    /// Schema name for the header.
    pub fn schema(&self) -> &'static str {
        match self {
            Self::Order(_) => OrderEvent::NAME,
            Self::Customer(_) => CustomerEvent::NAME,
            Self::Refund(_) => RefundEvent::NAME,
        }
    }

    /// The envelope meta.
    pub fn meta(&self) -> Option<&EventMeta> {
        match self {
            Self::Order(m) => m.meta.as_ref(),
            Self::Customer(m) => m.meta.as_ref(),
            Self::Refund(m) => m.meta.as_ref(),
        }
    }
}

/// What the transform learnt about its input, for DLQ entries and logs even when it fails.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Store named in the body.
    pub store: String,
    /// What it is about, when it could be read: `<store>/<order id>` for orders and returns
    /// (the key the writer's facts use), `<store>/account/<key>` for accounts.
    pub entity_key: String,
    /// Mapping rules that would have let a MAPPING failure through, best first.
    pub suggestions: Vec<Suggestion>,
    /// What is at fault in a MAPPING failure (the first unmapped tax code, or the currency).
    pub fault: Option<Fault>,
    /// The order's created date, as the store gave it.
    pub occurred_at: String,
    /// The order's number (`CustomKey`).
    pub order_number: String,
}

/// Transforms one raw body. `header_store` is `X-Clarity-Store` (the store the webhook arrived
/// for); a body naming another store is invalid.
pub fn transform(
    body: &[u8],
    header_store: Option<&str>,
    effective: &Effective,
) -> Result<Vec<Canonical>, TransformError> {
    transform_with_facts(body, header_store, effective, &mut Facts::default())
}

/// [`transform`], filling `facts` as far as it got.
pub fn transform_with_facts(
    body: &[u8],
    header_store: Option<&str>,
    effective: &Effective,
    facts: &mut Facts,
) -> Result<Vec<Canonical>, TransformError> {
    let env: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| TransformError::Malformed(format!("envelope: {e}")))?;
    facts.store = env.store.custom_key.clone();
    if let Some(v) = env.api_version.as_deref()
        && v != API_VERSION
    {
        return Err(TransformError::Unsupported(format!(
            "api_version {v:?} (this normalizer reads {API_VERSION})"
        )));
    }
    let ty = EventType::parse(&env.event_type)
        .ok_or_else(|| TransformError::Unsupported(format!("event type {:?}", env.event_type)))?;
    if env.id.trim().is_empty() {
        return Err(TransformError::Malformed("empty event id".into()));
    }
    let store = env.store.custom_key.as_str();
    if !ledgerline_contract::is_valid_token(store) {
        return Err(TransformError::Invalid(format!(
            "store.CustomKey {store:?} is not a valid store name"
        )));
    }
    if let Some(h) = header_store
        && h != store
    {
        return Err(TransformError::Invalid(format!(
            "body names store {store:?} but arrived for {h:?}"
        )));
    }
    let ctx = Ctx {
        env: &env,
        mapping: &effective.mapping,
        revision: &effective.revision,
    };
    let data = env.data.get();
    match ty {
        EventType::ReturnCompleted => {
            let r: clarity::SalesReturn = parse_data(data, "SalesReturn")?;
            facts.entity_key = format!("{store}/{}", r.sales_order_id);
            let out = ctx.refund(&r).map(|c| vec![c]);
            if let Err(TransformError::Mapping(_)) = &out {
                (facts.suggestions, facts.fault) = suggest(
                    &r.sales_items,
                    r.currency_key.as_deref(),
                    r.tax_included,
                    ctx.mapping,
                );
            }
            out
        }
        EventType::AccountCreated | EventType::AccountUpdated => {
            let a: clarity::Account = parse_data(data, "Account")?;
            facts.entity_key = format!("{store}/account/{}", a.custom_key.trim());
            let t = if ty == EventType::AccountCreated {
                CustomerEventType::Created
            } else {
                CustomerEventType::Updated
            };
            Ok(vec![ctx.account(&a, t)])
        }
        _ => {
            let o: clarity::SalesOrder = parse_data(data, "SalesOrder")?;
            facts.entity_key = format!("{store}/{}", o.id);
            facts.occurred_at = text(&o.created_date);
            facts.order_number = o.custom_key.trim().to_owned();
            let out = ctx.order(&o, ty);
            if let Err(TransformError::Mapping(_)) = &out {
                (facts.suggestions, facts.fault) = suggest(
                    &o.sales_items,
                    o.currency_key.as_deref(),
                    o.tax_included,
                    ctx.mapping,
                );
            }
            out
        }
    }
}

fn parse_data<'a, T: serde::Deserialize<'a>>(
    data: &'a str,
    what: &str,
) -> Result<T, TransformError> {
    serde_json::from_str(data).map_err(|e| TransformError::Malformed(format!("{what}: {e}")))
}

struct Ctx<'a> {
    env: &'a Envelope<'a>,
    mapping: &'a Mapping,
    revision: &'a str,
}

impl Ctx<'_> {
    fn meta(&self, suffix: &str) -> EventMeta {
        EventMeta {
            event_id: event_id(&self.env.id, suffix, self.revision),
            source_event_id: self.env.id.clone(),
            mapping_revision: self.revision.to_owned(),
            occurred_at: self.env.timestamp.clone(),
            store: self.env.store.custom_key.clone(),
            source_type: self.env.event_type.clone(),
            // Set by the pipeline, which knows where the raw event is stored.
            raw_sequence: 0,
        }
    }

    fn store(&self) -> &str {
        &self.env.store.custom_key
    }

    fn currency(&self, key: Option<&str>) -> Result<String, TransformError> {
        let raw = key.unwrap_or("").trim();
        let code = raw.to_ascii_uppercase();
        if iso_currency::Currency::from_code(&code).is_none() {
            return Err(TransformError::Invalid(format!(
                "CurrencyKey {raw:?} is not an ISO 4217 currency"
            )));
        }
        if !self.mapping.currency_allowed(&code) {
            return Err(TransformError::Mapping(format!(
                "currency {code} is not in the mapping's currency.allowed"
            )));
        }
        Ok(code)
    }

    fn order(
        &self,
        o: &clarity::SalesOrder,
        ty: EventType,
    ) -> Result<Vec<Canonical>, TransformError> {
        let currency = self.currency(o.currency_key.as_deref())?;
        let status = self.mapping.status_for(&o.status_key).ok_or_else(|| {
            TransformError::Mapping(format!(
                "StatusKey {:?} is not in the mapping",
                o.status_key
            ))
        })?;
        let tax_included = o.tax_included.unwrap_or(false);
        let built = lines::build(&o.sales_items, &o.totals, tax_included, self.mapping)?;
        let money = |d: Decimal| money(d, &currency);
        let mut payments = Vec::with_capacity(o.sales_order_payments.len());
        let mut paid = Decimal::ZERO;
        for p in &o.sales_order_payments {
            let p = &p.payment;
            if let Some(c) = p.currency_key.as_deref()
                && !c.trim().eq_ignore_ascii_case(&currency)
            {
                return Err(TransformError::Invalid(format!(
                    "payment {} is in {c}, the order in {currency}",
                    p.id
                )));
            }
            let received = p.received.unwrap_or(true);
            if received {
                paid += p.amount;
            }
            payments.push(Payment {
                id: p.id.to_string(),
                amount: Some(money(p.amount)),
                method: text(&p.payment_method_key),
                transaction_number: text(&p.transaction_number),
                received_at: text(&p.received_date),
                received,
                status: text(&p.status_key),
            });
        }
        let billing = o
            .billing_contact
            .as_ref()
            .and_then(|c| c.address.as_ref())
            .map(address::normalize);
        let shipping = o
            .shipping_contact
            .as_ref()
            .and_then(|c| c.address.as_ref())
            .map(address::normalize);
        let attributes = attrs(&o.serializable_attributes);
        let place = shipping.as_ref().or(billing.as_ref());
        let tracking = self.mapping.tracking_for(
            &attributes,
            place.map_or("", |a| a.country_code.as_str()),
            place.map_or("", |a| a.region_code.as_str()),
        );
        let customer = self.order_customer(o, billing.clone(), shipping.clone());
        let t = &o.totals;
        let order = Order {
            id: o.id.to_string(),
            number: o.custom_key.clone(),
            store: self.store().to_owned(),
            version: o.version,
            status: status as i32,
            source_status: o.status_key.clone(),
            currency: currency.clone(),
            tax_included,
            customer: Some(customer.clone()),
            billing_address: billing,
            shipping_address: shipping,
            lines: built
                .lines
                .iter()
                .map(|l| line_item(l, &o.sales_items, &currency))
                .collect(),
            totals: Some(Totals {
                subtotal: Some(money(t.sub_total)),
                shipping: Some(money(t.shipping)),
                handling: Some(money(t.handling)),
                fees: Some(money(t.fees)),
                discounts: Some(money(t.discounts)),
                tax: Some(money(t.tax)),
                total: Some(money(t.total)),
            }),
            payments,
            refunds: vec![],
            attributes,
            tracking,
            created_at: text(&o.created_date),
            updated_at: text(&o.updated_date),
            due_date: text(&o.due_date),
            purchase_order_number: text(&o.purchase_order_number),
            amount_paid: Some(money(paid)),
            balance_due: Some(money(t.total - paid)),
        };
        let event_type = match ty {
            EventType::OrderCreated => OrderEventType::Created,
            EventType::OrderPaid => OrderEventType::Paid,
            EventType::OrderVoided => OrderEventType::Cancelled,
            _ => OrderEventType::Updated,
        };
        let meta = self.meta("order");
        let mut out = vec![Canonical {
            subject: subjects::orders(self.store(), event_type, &order.id, &order.number),
            event_id: meta.event_id.clone(),
            message: Message::Order(OrderEvent {
                meta: Some(meta),
                r#type: event_type as i32,
                order: Some(order),
            }),
        }];
        // The order's customer, so a subscriber can keep contacts without reading orders. Only
        // on created/updated: payment and status events carry the same customer again.
        if matches!(ty, EventType::OrderCreated | EventType::OrderUpdated) {
            let meta = self.meta("customer");
            out.push(Canonical {
                subject: subjects::customers(self.store(), CustomerEventType::Updated),
                event_id: meta.event_id.clone(),
                message: Message::Customer(CustomerEvent {
                    meta: Some(meta),
                    r#type: CustomerEventType::Updated as i32,
                    customer: Some(customer),
                }),
            });
        }
        Ok(out)
    }

    fn order_customer(
        &self,
        o: &clarity::SalesOrder,
        billing: Option<Address>,
        shipping: Option<Address>,
    ) -> Customer {
        let bc = o.billing_contact.as_ref();
        let account_key = clean_opt(&o.account_key);
        let email = normalize_email(
            o.user_contact_email
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .or(bc.and_then(|c| c.email1.as_deref()))
                .unwrap_or(""),
        );
        let is_guest = account_key.is_empty();
        let identity_key = if !is_guest {
            account_key.clone()
        } else if !email.is_empty() {
            email.clone()
        } else {
            // No account and no email: the order itself is the only identity there is.
            format!("order:{}/{}", self.store(), o.id)
        };
        let first = o
            .user_contact_first_name
            .as_deref()
            .or(bc.and_then(|c| c.first_name.as_deref()));
        let last = o
            .user_contact_last_name
            .as_deref()
            .or(bc.and_then(|c| c.last_name.as_deref()));
        let company = clean_opt(&o.account_name);
        let company = if company.is_empty() {
            billing
                .as_ref()
                .map(|a| a.company.clone())
                .unwrap_or_default()
        } else {
            company
        };
        Customer {
            identity_key,
            account_id: o.account_id.map(|i| i.to_string()).unwrap_or_default(),
            account_key,
            account_name: clean_opt(&o.account_name),
            email,
            first_name: address::clean(first),
            last_name: address::clean(last),
            company,
            phone: address::clean(bc.and_then(|c| c.phone1.as_deref())),
            billing_address: billing,
            shipping_address: shipping,
            attributes: BTreeMap::new(),
            is_guest,
            version: 0,
            active: true,
        }
    }

    fn account(&self, a: &clarity::Account, ty: CustomerEventType) -> Canonical {
        let pc = a.primary_contact.as_ref();
        let shipping = a
            .account_contacts
            .iter()
            .find(|c| c.type_key.as_deref() == Some("Shipping"))
            .and_then(|c| c.address.as_ref())
            .map(address::normalize);
        let mut attributes = attrs(&a.serializable_attributes);
        for (k, v) in [("EIN", &a.ein), ("TaxExemptionNo", &a.tax_exemption_no)] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                attributes.insert(k.to_owned(), v.trim().to_owned());
            }
        }
        let customer = Customer {
            identity_key: a.custom_key.trim().to_owned(),
            account_id: a.id.to_string(),
            account_key: a.custom_key.trim().to_owned(),
            account_name: clean_opt(&a.name),
            email: normalize_email(pc.and_then(|c| c.email1.as_deref()).unwrap_or("")),
            first_name: address::clean(pc.and_then(|c| c.first_name.as_deref())),
            last_name: address::clean(pc.and_then(|c| c.last_name.as_deref())),
            company: clean_opt(&a.name),
            phone: address::clean(pc.and_then(|c| c.phone1.as_deref())),
            billing_address: pc.and_then(|c| c.address.as_ref()).map(address::normalize),
            shipping_address: shipping,
            attributes,
            is_guest: false,
            version: a.version,
            active: a.active.unwrap_or(true),
        };
        let meta = self.meta("customer");
        Canonical {
            subject: subjects::customers(self.store(), ty),
            event_id: meta.event_id.clone(),
            message: Message::Customer(CustomerEvent {
                meta: Some(meta),
                r#type: ty as i32,
                customer: Some(customer),
            }),
        }
    }

    fn refund(&self, r: &clarity::SalesReturn) -> Result<Canonical, TransformError> {
        let currency = self.currency(r.currency_key.as_deref())?;
        let tax_included = r.tax_included.unwrap_or(false);
        let built = lines::build(&r.sales_items, &r.totals, tax_included, self.mapping)?;
        let refunded: Decimal = r.refund_payments.iter().map(|p| p.amount).sum();
        if !r.refund_payments.is_empty() && refunded != r.totals.total {
            return Err(TransformError::Invalid(format!(
                "RefundPayments sum to {refunded}, Totals.Total is {}",
                r.totals.total
            )));
        }
        let first = r.refund_payments.first();
        let refund = Refund {
            id: r.id.to_string(),
            return_key: r.custom_key.clone(),
            amount: Some(money(r.totals.total, &currency)),
            method: first
                .map(|p| text(&p.payment_method_key))
                .unwrap_or_default(),
            transaction_number: first
                .map(|p| text(&p.transaction_number))
                .unwrap_or_default(),
            original_payment_id: first
                .and_then(|p| p.original_payment_id)
                .map(|i| i.to_string())
                .unwrap_or_default(),
            refunded_at: first
                .and_then(|p| p.received_date.clone())
                .or_else(|| r.updated_date.clone())
                .unwrap_or_default(),
            reason: text(&r.reason),
            lines: built
                .lines
                .iter()
                .map(|l| line_item(l, &r.sales_items, &currency))
                .collect(),
            subtotal: Some(money(
                r.totals.sub_total
                    + r.totals.shipping
                    + r.totals.handling
                    + r.totals.fees
                    + r.totals.discounts,
                &currency,
            )),
            tax: Some(money(r.totals.tax, &currency)),
            version: r.version,
        };
        let meta = self.meta("refund");
        Ok(Canonical {
            subject: subjects::orders(
                self.store(),
                OrderEventType::Refunded,
                &r.sales_order_id.to_string(),
                &text(&r.sales_order_key),
            ),
            event_id: meta.event_id.clone(),
            message: Message::Refund(RefundEvent {
                meta: Some(meta),
                order_id: r.sales_order_id.to_string(),
                order_number: text(&r.sales_order_key),
                order_version: r.sales_order_version.unwrap_or(0),
                refund: Some(refund),
                currency,
                tax_included,
            }),
        })
    }
}

/// The canonical event id: the raw event id, what was derived, and the mapping revision. A
/// redelivery yields the same id (deduplicated by JetStream); a new mapping yields a new one.
pub fn event_id(source_event_id: &str, what: &str, revision: &str) -> String {
    format!("{source_event_id}.{what}@{revision}")
}

fn line_item(l: &Line, items: &[clarity::SalesItem], currency: &str) -> LineItem {
    let item = l.item.map(|i| &items[i]);
    let kind = match l.kind {
        Kind::Product => LineKind::Product,
        Kind::Shipping => LineKind::Shipping,
        Kind::Handling => LineKind::Handling,
        Kind::Fee => LineKind::Fee,
        Kind::Discount => LineKind::Discount,
        Kind::Rounding => LineKind::Rounding,
    };
    let description = match (l.kind, item) {
        (Kind::Product, Some(i)) => address::clean(i.name.as_deref().or(i.sku.as_deref())),
        (Kind::Shipping, _) => "Shipping".to_owned(),
        (Kind::Handling, _) => "Handling".to_owned(),
        (Kind::Fee, _) => "Fees".to_owned(),
        (Kind::Discount, _) => "Discount".to_owned(),
        _ => "Rounding".to_owned(),
    };
    LineItem {
        kind: kind as i32,
        source_id: item.map(|i| i.id.to_string()).unwrap_or_default(),
        sku: item.map(|i| text(&i.sku)).unwrap_or_default(),
        description,
        quantity: l.quantity.normalize().to_string(),
        unit_price: Some(unit_money(l.unit_price, currency)),
        discount: Some(money(l.discount, currency)),
        tax_amount: Some(money(l.tax_amount, currency)),
        tax_rate: l.tax_rate.normalize().to_string(),
        source_tax_code: l.tax_code.clone(),
        taxable: l.taxable,
        line_total: Some(money(l.line_total, currency)),
        attributes: item
            .map(|i| attrs(&i.serializable_attributes))
            .unwrap_or_default(),
    }
}

/// Money at 2 dp.
pub fn money(d: Decimal, currency: &str) -> Money {
    let mut d = lines::r2(d);
    d.rescale(2);
    Money {
        amount: d.to_string(),
        currency: currency.to_owned(),
    }
}

/// A unit price: at least 2 dp, up to the 4 the store sends.
fn unit_money(d: Decimal, currency: &str) -> Money {
    let mut d = d;
    if d.scale() < 2 {
        d.rescale(2);
    }
    Money {
        amount: d.to_string(),
        currency: currency.to_owned(),
    }
}

fn attrs(a: &Attributes) -> BTreeMap<String, String> {
    a.iter()
        .filter_map(|(k, v)| v.value.as_ref().map(|v| (k.clone(), v.clone())))
        .collect()
}

fn text(s: &Option<String>) -> String {
    s.as_deref().map(str::trim).unwrap_or("").to_owned()
}

fn clean_opt(s: &Option<String>) -> String {
    address::clean(s.as_deref())
}

/// Trimmed and lower-cased; the identity of a guest.
pub fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

/// Rules that would let a MAPPING failure through: for a tax code the mapping lacks, the mapped
/// code whose rate equals the items' effective rate (tax ÷ net); for a currency not allowed,
/// allowing it.
fn suggest(
    items: &[clarity::SalesItem],
    currency: Option<&str>,
    tax_included: Option<bool>,
    mapping: &Mapping,
) -> (Vec<Suggestion>, Option<Fault>) {
    let mut out: Vec<Suggestion> = Vec::new();
    let mut fault = None;
    for item in items.iter().filter(|i| i.product_is_taxable) {
        let code = item.product_tax_code.as_deref().unwrap_or("").trim();
        if mapping.tax_code(code).is_some()
            || out.iter().any(|s| s.field == format!("tax_codes.{code}"))
        {
            continue;
        }
        let discount: Decimal = item.discounts.iter().map(|d| d.discount_total).sum();
        let tax = item.extended_tax_amount.unwrap_or_default();
        let gross = item.quantity * item.unit_sold_price;
        // Tax-inclusive prices hold the tax: the net is what is left after taking it out.
        let net = if tax_included.unwrap_or(false) {
            gross - tax
        } else {
            gross
        } - discount;
        if net <= Decimal::ZERO {
            continue;
        }
        let effective = (tax / net).round_dp(4);
        let best = mapping
            .tax_codes
            .iter()
            .min_by_key(|(_, t)| (t.rate - effective).abs())
            .filter(|(_, t)| (t.rate - effective).abs() <= Decimal::new(5, 3));
        let (value, score, reason, rule) = match best {
            Some((known, t)) => (
                format!("rate = \"{}\", tax_type = \"{}\"", t.rate, t.tax_type),
                0.9,
                format!(
                    "items with {code} are taxed at an effective {effective}, the rate of {known}"
                ),
                format!(
                    "[tax_codes.{code:?}]\nrate = \"{}\"\ntax_type = {:?}\n",
                    t.rate, t.tax_type
                ),
            ),
            None => (
                format!("rate = \"{effective}\", tax_type = \"?\""),
                0.4,
                format!(
                    "items with {code} are taxed at an effective {effective}; no mapped code has that rate"
                ),
                // No TaxType is known to fit: a person picks one.
                String::new(),
            ),
        };
        if fault.is_none() {
            fault = ledgerline_platform::dead_letter::fault("unknown_tax_code", "tax_code", code);
        }
        out.push(Suggestion {
            field: format!("tax_codes.{code}"),
            current_value: String::new(),
            suggested_value: value,
            score,
            reason,
            rule,
        });
    }
    let code = currency.unwrap_or("").trim().to_ascii_uppercase();
    if iso_currency::Currency::from_code(&code).is_some() && !mapping.currency_allowed(&code) {
        if fault.is_none() {
            fault =
                ledgerline_platform::dead_letter::fault("currency_not_allowed", "currency", &code);
        }
        out.push(Suggestion {
            field: "currency.allowed".to_owned(),
            current_value: mapping.currency.allowed.join(","),
            suggested_value: format!("add \"{code}\""),
            score: 0.5,
            reason: format!("orders arrive in {code}"),
            rule: format!(
                "[currency]\nallowed = [{}]\n",
                mapping
                    .currency
                    .allowed
                    .iter()
                    .chain(std::iter::once(&code))
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    (out, fault)
}
