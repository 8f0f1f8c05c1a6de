//! Ground truth: what the store holds, and what Xero must end up with, in a stable JSON format
//! (`clarity-sim/ground-truth/v1`, documented in the crate README).

use crate::event::Event;
use crate::store::{ApplyError, StoreState};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format tag written in every ground-truth document.
pub const FORMAT: &str = "clarity-sim/ground-truth/v1";

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Always [`FORMAT`].
    pub format: String,
    /// Store key.
    pub store: String,
    /// Every order's final state, by order number.
    pub orders: Vec<OrderTruth>,
    /// Every account's final state.
    pub accounts: Vec<AccountTruth>,
    /// What Xero must add up to, per currency (ISO 4217 → sums).
    pub per_currency: BTreeMap<String, CurrencyTruth>,
}

/// Who the customer is: B2B account, registered user, or guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerTruth {
    /// B2B account id, when there is one.
    pub account_id: Option<i64>,
    /// B2B account key.
    pub account_key: Option<String>,
    /// B2B account name (not unique).
    pub account_name: Option<String>,
    /// Registered user id; `None` for guests.
    pub user_id: Option<i64>,
    /// Customer email.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// No account and no user id.
    pub guest: bool,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineTruth {
    /// Line id.
    pub id: i64,
    /// SKU.
    pub sku: String,
    /// Quantity.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub quantity: Decimal,
    /// `UnitSoldPrice` as sent (tax-inclusive when the order is).
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub unit_price: Decimal,
    /// Tax code.
    pub tax_code: String,
    /// Sum of the line's discount allocations (positive).
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub discount: Decimal,
    /// `ExtendedTaxAmount`.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub tax: Decimal,
}

/// A return against an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnTruth {
    /// Return id.
    pub id: i64,
    /// `RMA-...`.
    pub number: String,
    /// Return version.
    pub version: u32,
    /// Credit total (tax included).
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub total: Decimal,
    /// Credit tax.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub tax: Decimal,
    /// Sum of refund payments.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub refunded: Decimal,
}

/// One order's final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTruth {
    /// Order id.
    pub id: i64,
    /// Order number (`CustomKey`).
    pub number: String,
    /// Store key.
    pub store: String,
    /// Highest version.
    pub version: u32,
    /// When it was placed (`CreatedDate`): the day a reconciliation report puts it on.
    pub created: chrono::DateTime<chrono::Utc>,
    /// `StatusKey`.
    pub status: String,
    /// `StateKey`.
    pub state: String,
    /// Status is `Void`.
    pub voided: bool,
    /// Customer identity.
    pub customer: CustomerTruth,
    /// ISO 4217.
    pub currency: String,
    /// Whether unit prices include tax.
    pub tax_included: bool,
    /// Lines.
    pub lines: Vec<LineTruth>,
    /// The order's `Totals`, unchanged.
    pub totals: crate::model::Totals,
    /// Sum of received payments.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub amount_paid: Decimal,
    /// `Total - amount_paid`.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub balance_due: Decimal,
    /// Payment ids and amounts.
    pub payments: Vec<PaymentTruth>,
    /// Returns against this order.
    pub returns: Vec<ReturnTruth>,
    /// Sum of return totals.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub credited: Decimal,
    /// Sum of refunds paid out.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub refunded: Decimal,
}

/// One payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentTruth {
    /// Payment id.
    pub id: i64,
    /// Amount.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub amount: Decimal,
}

/// One account's final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountTruth {
    /// Account id.
    pub id: i64,
    /// Account key.
    pub key: String,
    /// Name (not unique).
    pub name: String,
    /// Highest version.
    pub version: u32,
}

/// Per-currency sums Xero must reproduce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CurrencyTruth {
    /// Orders in this currency, voided included.
    pub orders: usize,
    /// Voided orders (their invoices must be voided, not counted below).
    pub voided: usize,
    /// Sum of `Totals.Total` over orders not voided: the invoices' total.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub invoiced_total: Decimal,
    /// Sum of `Totals.Tax` over orders not voided.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub invoiced_tax: Decimal,
    /// Sum of payments received on orders not voided.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub paid: Decimal,
    /// Sum of return totals: the credit notes' total.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub credited: Decimal,
    /// Sum of refunds paid out against credit notes.
    #[serde(with = "ledgerline_platform::json::decimal")]
    pub refunded: Decimal,
}

impl GroundTruth {
    /// The truth after every event is applied.
    pub fn from_events(events: &[Event]) -> Result<Self, ApplyError> {
        Ok(Self::from_state(&StoreState::from_events(events)?))
    }

    /// The truth of a store's current state.
    pub fn from_state(state: &StoreState) -> Self {
        let store = state
            .store
            .as_ref()
            .map(|s| s.custom_key.clone())
            .unwrap_or_default();
        let mut per_currency: BTreeMap<String, CurrencyTruth> = BTreeMap::new();
        let mut orders = Vec::new();
        for o in state.orders.values() {
            let returns: Vec<ReturnTruth> = state
                .returns
                .values()
                .filter(|r| r.sales_order_id == o.id)
                .map(|r| ReturnTruth {
                    id: r.id,
                    number: r.custom_key.clone(),
                    version: r.version,
                    total: r.totals.total,
                    tax: r.totals.tax,
                    refunded: r.refund_payments.iter().map(|p| p.amount).sum(),
                })
                .collect();
            let voided = o.status_key == "Void";
            let amount_paid = o.amount_paid();
            let credited: Decimal = returns.iter().map(|r| r.total).sum();
            let refunded: Decimal = returns.iter().map(|r| r.refunded).sum();
            let c = per_currency.entry(o.currency_key.clone()).or_default();
            c.orders += 1;
            if voided {
                c.voided += 1;
            } else {
                c.invoiced_total += o.totals.total;
                c.invoiced_tax += o.totals.tax;
                c.paid += amount_paid;
            }
            c.credited += credited;
            c.refunded += refunded;
            orders.push(OrderTruth {
                id: o.id,
                number: o.custom_key.clone(),
                store: store.clone(),
                version: o.version,
                created: o.created_date,
                status: o.status_key.clone(),
                state: o.state_key.clone(),
                voided,
                customer: CustomerTruth {
                    account_id: o.account_id,
                    account_key: o.account_key.clone(),
                    account_name: o.account_name.clone(),
                    user_id: o.user_id,
                    email: o.user_contact_email.clone(),
                    first_name: o.user_contact_first_name.clone(),
                    last_name: o.user_contact_last_name.clone(),
                    guest: o.account_id.is_none() && o.user_id.is_none(),
                },
                currency: o.currency_key.clone(),
                tax_included: o.tax_included,
                lines: o
                    .sales_items
                    .iter()
                    .map(|i| LineTruth {
                        id: i.id,
                        sku: i.sku.clone(),
                        quantity: i.quantity,
                        unit_price: i.unit_sold_price,
                        tax_code: i.product_tax_code.clone(),
                        discount: i.discounts.iter().map(|d| d.discount_total).sum(),
                        tax: i.extended_tax_amount,
                    })
                    .collect(),
                totals: o.totals,
                amount_paid,
                balance_due: o.totals.total - amount_paid,
                payments: o
                    .sales_order_payments
                    .iter()
                    .map(|p| PaymentTruth {
                        id: p.payment.id,
                        amount: p.payment.amount,
                    })
                    .collect(),
                returns,
                credited,
                refunded,
            });
        }
        orders.sort_by(|a, b| a.number.cmp(&b.number));
        let accounts = state
            .accounts
            .values()
            .map(|a| AccountTruth {
                id: a.id,
                key: a.custom_key.clone(),
                name: a.name.clone(),
                version: a.version,
            })
            .collect();
        Self {
            format: FORMAT.to_owned(),
            store,
            orders,
            accounts,
            per_currency,
        }
    }
}
