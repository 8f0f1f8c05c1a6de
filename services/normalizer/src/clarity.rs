//! The Clarity webhook contract (api_version 2026-11) as serde types. Money is read from the JSON
//! number's own text into `Decimal` (never `f64`); optional fields default when absent or null.

use ledgerline_platform::json::{decimal, opt_decimal};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The closed list of event types of api_version 2026-11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `sales_order.created`.
    OrderCreated,
    /// `sales_order.updated`.
    OrderUpdated,
    /// `sales_order.status_changed`.
    OrderStatusChanged,
    /// `sales_order.paid`.
    OrderPaid,
    /// `sales_order.voided`.
    OrderVoided,
    /// `sales_return.completed`.
    ReturnCompleted,
    /// `account.created`.
    AccountCreated,
    /// `account.updated`.
    AccountUpdated,
}

impl EventType {
    /// Parses the body's `type`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sales_order.created" => Self::OrderCreated,
            "sales_order.updated" => Self::OrderUpdated,
            "sales_order.status_changed" => Self::OrderStatusChanged,
            "sales_order.paid" => Self::OrderPaid,
            "sales_order.voided" => Self::OrderVoided,
            "sales_return.completed" => Self::ReturnCompleted,
            "account.created" => Self::AccountCreated,
            "account.updated" => Self::AccountUpdated,
            _ => return None,
        })
    }
}

/// The envelope; `data` stays raw until the type is known.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// Event id (`evt_...` or `resync_...`).
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened.
    #[serde(default)]
    pub timestamp: String,
    /// Contract version.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The store.
    pub store: StoreRef,
    /// The entity snapshot.
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// `store`.
#[derive(Debug, Deserialize)]
pub struct StoreRef {
    /// Store key (`main`).
    #[serde(rename = "CustomKey")]
    pub custom_key: String,
}

/// A custom field value.
#[derive(Debug, Clone, Deserialize)]
pub struct Attribute {
    /// Value text.
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
}

/// `SerializableAttributes`.
pub type Attributes = BTreeMap<String, Attribute>;

/// An address as sent.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", default)]
#[allow(missing_docs)]
pub struct Address {
    pub company: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub street3: Option<String>,
    pub city: Option<String>,
    pub region_code: Option<String>,
    pub region_name: Option<String>,
    pub postal_code: Option<String>,
    pub country_code: Option<String>,
    pub country_name: Option<String>,
}

/// A contact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[allow(missing_docs)]
pub struct Contact {
    #[serde(rename = "ID")]
    pub id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email1: Option<String>,
    pub phone1: Option<String>,
    pub address: Option<Address>,
    pub type_key: Option<String>,
}

/// `Totals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct Totals {
    #[serde(with = "decimal")]
    pub sub_total: Decimal,
    #[serde(with = "decimal")]
    pub shipping: Decimal,
    #[serde(with = "decimal")]
    pub handling: Decimal,
    #[serde(with = "decimal")]
    pub fees: Decimal,
    #[serde(with = "decimal")]
    pub discounts: Decimal,
    #[serde(with = "decimal")]
    pub tax: Decimal,
    #[serde(with = "decimal")]
    pub total: Decimal,
}

/// An item's discount allocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ItemDiscount {
    #[serde(default)]
    pub slave_name: Option<String>,
    #[serde(with = "decimal")]
    pub discount_total: Decimal,
}

/// A sales item (order or return).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct SalesItem {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(with = "decimal")]
    pub quantity: Decimal,
    #[serde(with = "decimal")]
    pub unit_sold_price: Decimal,
    #[serde(default)]
    pub product_is_taxable: bool,
    #[serde(default)]
    pub product_tax_code: Option<String>,
    #[serde(default, with = "opt_decimal")]
    pub extended_tax_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "null_default")]
    pub discounts: Vec<ItemDiscount>,
    #[serde(default, deserialize_with = "null_default")]
    pub serializable_attributes: Attributes,
    #[serde(rename = "SalesOrderItemID", default)]
    pub sales_order_item_id: Option<i64>,
}

/// A payment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct Payment {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(with = "decimal")]
    pub amount: Decimal,
    #[serde(default)]
    pub currency_key: Option<String>,
    #[serde(default)]
    pub status_key: Option<String>,
    #[serde(default)]
    pub payment_method_key: Option<String>,
    #[serde(default)]
    pub transaction_number: Option<String>,
    #[serde(default)]
    pub received: Option<bool>,
    #[serde(default)]
    pub received_date: Option<String>,
    #[serde(rename = "OriginalPaymentID", default)]
    pub original_payment_id: Option<i64>,
}

/// `SalesOrderPayments[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct OrderPayment {
    pub payment: Payment,
}

/// A SalesOrder snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct SalesOrder {
    #[serde(rename = "ID")]
    pub id: i64,
    pub custom_key: String,
    pub version: u64,
    pub status_key: String,
    #[serde(default)]
    pub currency_key: Option<String>,
    #[serde(default)]
    pub tax_included: Option<bool>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub updated_date: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub purchase_order_number: Option<String>,
    #[serde(default, with = "opt_decimal")]
    pub balance_due: Option<Decimal>,
    #[serde(rename = "AccountID", default)]
    pub account_id: Option<i64>,
    #[serde(default)]
    pub account_key: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub user_contact_email: Option<String>,
    #[serde(default)]
    pub user_contact_first_name: Option<String>,
    #[serde(default)]
    pub user_contact_last_name: Option<String>,
    #[serde(default)]
    pub billing_contact: Option<Contact>,
    #[serde(default)]
    pub shipping_contact: Option<Contact>,
    pub totals: Totals,
    #[serde(default, deserialize_with = "null_default")]
    pub sales_items: Vec<SalesItem>,
    #[serde(default, deserialize_with = "null_default")]
    pub sales_order_payments: Vec<OrderPayment>,
    #[serde(default, deserialize_with = "null_default")]
    pub serializable_attributes: Attributes,
    #[serde(default)]
    pub previous_status_key: Option<String>,
}

/// A SalesReturn snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct SalesReturn {
    #[serde(rename = "ID")]
    pub id: i64,
    pub custom_key: String,
    pub version: u64,
    #[serde(rename = "SalesOrderID")]
    pub sales_order_id: i64,
    #[serde(default)]
    pub sales_order_key: Option<String>,
    #[serde(default)]
    pub sales_order_version: Option<u64>,
    #[serde(default)]
    pub currency_key: Option<String>,
    #[serde(default)]
    pub tax_included: Option<bool>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub updated_date: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub sales_items: Vec<SalesItem>,
    pub totals: Totals,
    #[serde(default, deserialize_with = "null_default")]
    pub refund_payments: Vec<Payment>,
}

/// An Account snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct Account {
    #[serde(rename = "ID")]
    pub id: i64,
    pub custom_key: String,
    pub version: u64,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub primary_contact: Option<Contact>,
    #[serde(default, deserialize_with = "null_default")]
    pub account_contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "null_default")]
    pub serializable_attributes: Attributes,
    #[serde(rename = "EIN", default)]
    pub ein: Option<String>,
    #[serde(default)]
    pub tax_exemption_no: Option<String>,
}

/// `null` reads as the type's default (empty list or map), like a missing field.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
