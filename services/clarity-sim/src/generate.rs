//! Deterministic generation of a store's history as a timeline of webhook events.
//!
//! Same seed and config, same bytes: every random choice comes from one ChaCha8 stream seeded
//! with `seed`, and times are derived from `GenConfig::start`, never from the clock.

use crate::event::Event;
use crate::model::*;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use std::collections::BTreeMap;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Store key (`main`): the `<store>` in the webhook URL and `store.CustomKey` in bodies.
    pub store: String,
    /// Store id in bodies.
    pub store_id: i64,
    /// Display name in bodies.
    pub store_name: String,
    /// How many orders.
    pub orders: usize,
    /// Simulated time of the first event; later events follow it by minutes.
    pub start: DateTime<Utc>,
    /// Orders of each kind that a mapping cannot take as it stands, spread through the run:
    /// an item with the tax code `GST12` (15 %, new in the store, absent from the default
    /// mapping), and a sales channel, "Pop-up Shop", that the organisation has no tracking
    /// option for. They go to the review queue until someone fixes the mapping.
    pub review: usize,
}

impl GenConfig {
    /// A store named `store` with `orders` orders, starting 2026-11-20T08:00:00Z.
    pub fn new(store: &str, orders: usize) -> Self {
        Self {
            store: store.to_owned(),
            store_id: 1,
            store_name: if store == "main" {
                "Acme Parts NZ".to_owned()
            } else {
                format!("Clarity store {store}")
            },
            orders,
            start: Utc
                .with_ymd_and_hms(2026, 11, 20, 8, 0, 0)
                .single()
                .expect("valid date"),
            review: 0,
        }
    }

    /// Which review case order `n` is, if any (see [`GenConfig::review`]).
    fn review_case(&self, n: usize) -> Option<ReviewCase> {
        let slots = 2 * self.review;
        (0..slots)
            .find(|j| (j + 1) * self.orders / (slots + 1) == n)
            .map(|j| {
                if j % 2 == 0 {
                    ReviewCase::TaxCode
                } else {
                    ReviewCase::Channel
                }
            })
    }
}

/// An order the default mapping cannot take as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReviewCase {
    /// One item carries the store's new tax code `GST12`.
    TaxCode,
    /// The order came through a sales channel the organisation has no tracking option for.
    Channel,
}

/// The review cases' values.
const REVIEW_TAX_CODE: &str = "GST12";
const REVIEW_CHANNEL: &str = "Pop-up Shop";

/// Rounds money to 2 dp, half away from zero.
pub fn r2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Rounds unit prices and line tax to 4 dp, half away from zero.
pub fn r4(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
}

/// The rate behind a tax code (`GST15` and the newer `GST12` 15 %, `GST10` 10 %, anything else
/// 0).
pub fn tax_rate(code: &str) -> Decimal {
    match code {
        "GST15" | REVIEW_TAX_CODE => dec!(0.15),
        "GST10" => dec!(0.10),
        _ => Decimal::ZERO,
    }
}

/// A discount code applied to an order, kept so totals can be recomputed after an edit.
#[derive(Debug, Clone)]
enum DiscountSpec {
    /// A fixed amount, allocated to the largest line.
    Fixed {
        id: i64,
        code: &'static str,
        amount: Decimal,
    },
    /// A percentage of every line.
    Percent {
        id: i64,
        code: &'static str,
        pct: Decimal,
    },
}

/// Order-level pricing inputs that are not on the items.
#[derive(Debug, Clone)]
struct Charges {
    shipping: Decimal,
    handling: Decimal,
    fees: Decimal,
    /// Rate for shipping, handling and fees (the order's main tax code).
    order_rate: Decimal,
    discounts: Vec<DiscountSpec>,
}

fn item_rate(item: &SalesOrderItem) -> Decimal {
    if item.product_is_taxable {
        tax_rate(&item.product_tax_code)
    } else {
        Decimal::ZERO
    }
}

/// A line's amount net of tax, before discounts: `qty × price`, divided by `1 + rate` when the
/// store priced tax-inclusive, rounded to 2 dp.
pub fn line_net(
    quantity: Decimal,
    unit_sold_price: Decimal,
    rate: Decimal,
    tax_included: bool,
) -> Decimal {
    if tax_included {
        r2(quantity * unit_sold_price / (Decimal::ONE + rate))
    } else {
        r2(quantity * unit_sold_price)
    }
}

/// Recomputes allocations, line tax and `Totals` from items and charges; keeps the identity exact.
fn price(o: &mut SalesOrder, ch: &Charges) {
    let nets: Vec<Decimal> = o
        .sales_items
        .iter()
        .map(|i| line_net(i.quantity, i.unit_sold_price, item_rate(i), o.tax_included))
        .collect();
    let mut allocs: Vec<Vec<ItemDiscount>> = vec![Vec::new(); nets.len()];
    let mut remaining = nets.clone();
    for spec in &ch.discounts {
        match spec {
            DiscountSpec::Fixed { id, code, amount } => {
                if let Some((idx, _)) = remaining.iter().enumerate().max_by_key(|(_, n)| **n) {
                    let a = (*amount).min(remaining[idx]);
                    if a > Decimal::ZERO {
                        remaining[idx] -= a;
                        allocs[idx].push(ItemDiscount {
                            slave_id: *id,
                            slave_name: (*code).to_owned(),
                            discount_total: a,
                        });
                    }
                }
            }
            DiscountSpec::Percent { id, code, pct } => {
                for (idx, net) in nets.iter().enumerate() {
                    let a = r2(*net * *pct / dec!(100)).min(remaining[idx]);
                    if a > Decimal::ZERO {
                        remaining[idx] -= a;
                        allocs[idx].push(ItemDiscount {
                            slave_id: *id,
                            slave_name: (*code).to_owned(),
                            discount_total: a,
                        });
                    }
                }
            }
        }
    }
    let mut tax_base = Decimal::ZERO;
    for (idx, item) in o.sales_items.iter_mut().enumerate() {
        let rate = item_rate(item);
        item.discounts = allocs[idx].clone();
        item.extended_tax_amount = r4(remaining[idx] * rate);
        tax_base += remaining[idx] * rate;
    }
    let extras = ch.shipping + ch.handling + ch.fees;
    let discount_sum: Decimal = allocs.iter().flatten().map(|d| d.discount_total).sum();
    let mut t = Totals {
        sub_total: nets.iter().copied().sum(),
        shipping: ch.shipping,
        handling: ch.handling,
        fees: ch.fees,
        discounts: -discount_sum,
        tax: r2(tax_base + extras * ch.order_rate),
        total: Decimal::ZERO,
    };
    t.total = t.computed_total();
    o.totals = t;
    o.discounts = ch
        .discounts
        .iter()
        .filter_map(|spec| {
            let (id, code, kind) = match spec {
                DiscountSpec::Fixed { id, code, .. } => (*id, *code, 0),
                DiscountSpec::Percent { id, code, .. } => (*id, *code, 1),
            };
            let total: Decimal = allocs
                .iter()
                .flatten()
                .filter(|d| d.slave_id == id)
                .map(|d| d.discount_total)
                .sum();
            (total > Decimal::ZERO).then(|| AppliedDiscount {
                slave_id: id,
                slave_name: code.to_owned(),
                discount_total: total,
                discount_value_type: kind,
            })
        })
        .collect();
    o.balance_due = o.totals.total - o.amount_paid();
}

struct Product {
    id: i64,
    sku: &'static str,
    name: &'static str,
    /// NZD list price, 4 dp.
    price: Decimal,
    uom: &'static str,
    /// Zero-rated regardless of the order (e.g. a printed manual, a donation).
    zero_rated: bool,
    /// Not taxable at all (e.g. a gift card).
    exempt: bool,
}

fn catalog() -> Vec<Product> {
    let p = |id, sku, name, price, uom, zero_rated, exempt| Product {
        id,
        sku,
        name,
        price,
        uom,
        zero_rated,
        exempt,
    };
    vec![
        p(
            221,
            "WID-001",
            "Widget, steel",
            dec!(40.00),
            "EA",
            false,
            false,
        ),
        p(
            305,
            "BRK-010",
            "Bracket kit",
            dec!(22.00),
            "EA",
            false,
            false,
        ),
        p(
            318,
            "BLT-M8-50",
            "Bolt M8 x 50, box of 50",
            dec!(18.4950),
            "BOX",
            false,
            false,
        ),
        p(
            402,
            "CBL-CU-25",
            "Copper cable 2.5mm",
            dec!(3.1275),
            "M",
            false,
            false,
        ),
        p(
            417,
            "PMP-200",
            "Transfer pump 200 L/min",
            dec!(1249.0000),
            "EA",
            false,
            false,
        ),
        p(
            433,
            "GLV-NIT-L",
            "Nitrile gloves, large",
            dec!(0.3333),
            "EA",
            false,
            false,
        ),
        p(
            450,
            "MAN-PRT",
            "Printed service manual",
            dec!(35.0000),
            "EA",
            true,
            false,
        ),
        p(
            466,
            "GFT-050",
            "Gift card 50",
            dec!(50.0000),
            "EA",
            false,
            true,
        ),
        p(
            481,
            "SEAL-KIT-3",
            "Seal kit, 3 pc",
            dec!(12.9900),
            "EA",
            false,
            false,
        ),
        p(
            499,
            "HOSE-HD-19",
            "Hose, heavy duty 19mm",
            dec!(7.8125),
            "M",
            false,
            false,
        ),
        p(
            512,
            "VLV-BR-25",
            "Brass valve 25mm",
            dec!(64.5000),
            "EA",
            false,
            false,
        ),
        p(
            530,
            "LUB-5L",
            "Lubricant 5 L",
            dec!(89.9500),
            "EA",
            false,
            false,
        ),
    ]
}

const FIRST: [&str; 12] = [
    "Jane", "John", "Aroha", "Wei", "Priya", "Liam", "Olivia", "Mateo", "Sam", "Noah", "Mia",
    "Tane",
];
const LAST: [&str; 10] = [
    "Doe", "Smith", "Ngata", "Chen", "Patel", "Brown", "Wilson", "Garcia", "Taylor", "Kaur",
];
/// Company names; duplicates on purpose ("different customers with the same name").
const COMPANIES: [&str; 10] = [
    "Acme Trading Ltd",
    "Harbour Supplies Ltd",
    "Kiwi Fixings",
    "Southern Cross Plumbing",
    "Harbour Supplies Ltd",
    "Pacific Engineering",
    "Blue Gum Builders Pty Ltd",
    "Summit Hardware Inc",
    "Thames Valley Tools",
    "Rhine Industrietechnik GmbH",
];
/// The store's sales channels: the demo organisation's "Sales Channel" tracking options.
const CHANNELS: [&str; 4] = ["Web Store", "B2B Portal", "Phone", "Marketplace"];
const CAMPAIGNS: [&str; 5] = [
    "newsletter-2026-11",
    "google-ads",
    "facebook",
    "direct",
    "partner-referral",
];

struct Place {
    city: &'static str,
    region_code: &'static str,
    region_name: &'static str,
    postal: &'static str,
    country_code: &'static str,
    country_name: &'static str,
    phone_prefix: &'static str,
}

fn places(currency: &str) -> Vec<Place> {
    let p =
        |city, region_code, region_name, postal, country_code, country_name, phone_prefix| Place {
            city,
            region_code,
            region_name,
            postal,
            country_code,
            country_name,
            phone_prefix,
        };
    match currency {
        "NZD" => vec![
            p(
                "Auckland",
                "AUK",
                "Auckland",
                "1010",
                "NZ",
                "New Zealand",
                "+64 9",
            ),
            p(
                "Wellington",
                "WGN",
                "Wellington",
                "6011",
                "NZ",
                "New Zealand",
                "+64 4",
            ),
            p(
                "Christchurch",
                "CAN",
                "Canterbury",
                "8011",
                "NZ",
                "New Zealand",
                "+64 3",
            ),
        ],
        "AUD" => vec![
            p(
                "Sydney",
                "NSW",
                "New South Wales",
                "2000",
                "AU",
                "Australia",
                "+61 2",
            ),
            p(
                "Melbourne",
                "VIC",
                "Victoria",
                "3000",
                "AU",
                "Australia",
                "+61 3",
            ),
        ],
        "USD" => vec![
            p(
                "Seattle",
                "WA",
                "Washington",
                "98101",
                "US",
                "United States",
                "+1 206",
            ),
            p(
                "Austin",
                "TX",
                "Texas",
                "73301",
                "US",
                "United States of America",
                "+1 512",
            ),
        ],
        "GBP" => vec![
            p(
                "London",
                "LND",
                "Greater London",
                "EC1A 1BB",
                "GB",
                "United Kingdom",
                "+44 20",
            ),
            p(
                "Manchester",
                "MAN",
                "Greater Manchester",
                "M1 1AE",
                "GB",
                "United Kingdom",
                "+44 161",
            ),
        ],
        _ => vec![
            p("Berlin", "BE", "Berlin", "10115", "DE", "Germany", "+49 30"),
            p(
                "Dublin", "D", "Dublin", "D02 XY45", "IE", "Ireland", "+353 1",
            ),
            p(
                "Paris",
                "IDF",
                "Île-de-France",
                "75001",
                "FR",
                "France",
                "+33 1",
            ),
        ],
    }
}

fn fx(currency: &str) -> Decimal {
    match currency {
        "AUD" => dec!(0.92),
        "USD" => dec!(0.60),
        "GBP" => dec!(0.47),
        "EUR" => dec!(0.55),
        _ => Decimal::ONE,
    }
}

#[derive(Clone)]
struct Person {
    user_id: Option<i64>,
    first: String,
    last: String,
    email: String,
    currency: String,
    contact: Contact,
}

struct AccountState {
    account: Account,
    person: Person,
}

/// Generates a store's timeline. See [`Generator::events`].
#[derive(Debug)]
pub struct Generator {
    seed: u64,
    cfg: GenConfig,
}

struct Ctx {
    rng: ChaCha8Rng,
    next_id: i64,
    /// `(time, sequence, event)`; sorted by time then sequence at the end.
    out: Vec<(DateTime<Utc>, u64, Event)>,
    seq: u64,
    store: StoreRef,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Ctx {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.rng.random_range(0..items.len())]
    }

    /// ULID-shaped id: 26 Crockford base32 characters from the seeded stream.
    fn event_id(&mut self) -> String {
        let mut s = String::from("evt_");
        for _ in 0..26 {
            s.push(CROCKFORD[self.rng.random_range(0..32)] as char);
        }
        s
    }

    fn money(&mut self, lo: u32, hi: u32) -> Decimal {
        Decimal::new(i64::from(self.rng.random_range(lo..=hi)), 2)
    }

    fn emit<T: serde::Serialize>(
        &mut self,
        at: DateTime<Utc>,
        ty: EventType,
        key: String,
        version: u32,
        data: &T,
    ) {
        let id = self.event_id();
        let envelope = Envelope {
            id: id.clone(),
            event_type: ty,
            timestamp: at + Duration::milliseconds(250),
            api_version: API_VERSION.to_owned(),
            store: self.store.clone(),
            data,
        };
        let body = serde_json::to_vec(&envelope).expect("model types serialize");
        let event = Event {
            id,
            event_type: ty,
            store: self.store.custom_key.clone(),
            partition_key: key,
            version,
            occurred_at: at,
            body: Bytes::from(body),
        };
        self.seq += 1;
        self.out.push((at, self.seq, event));
    }

    fn address(&mut self, currency: &str, company: Option<&str>) -> (Address, &'static str) {
        let places = places(currency);
        let place = self.pick(&places);
        // Country as a code, a name, or both, in whatever case the store had.
        let (code, name) = match self.rng.random_range(0..6) {
            0 => (Some(place.country_code.to_owned()), None),
            1 => (Some(place.country_code.to_lowercase()), None),
            2 => (None, Some(place.country_name.to_owned())),
            3 => (None, Some(place.country_name.to_uppercase())),
            4 => (
                Some(place.country_code.to_owned()),
                Some(place.country_name.to_lowercase()),
            ),
            _ => (
                Some(place.country_code.to_owned()),
                Some(place.country_name.to_owned()),
            ),
        };
        let number = self.rng.random_range(1..400);
        let street = *self.pick(&[
            "Queen Street",
            "High Street",
            "Station Road",
            "Main Street",
            "Harbour Drive",
        ]);
        let level = if self.chance(0.3) {
            Some(format!("Level {}", self.rng.random_range(1..20)))
        } else {
            None
        };
        let addr = Address {
            company: company.map(str::to_owned),
            street1: Some(format!("{number} {street}")),
            street2: level,
            street3: None,
            city: Some(place.city.to_owned()),
            region_code: Some(place.region_code.to_owned()),
            region_name: Some(place.region_name.to_owned()),
            postal_code: Some(place.postal.to_owned()),
            country_code: code,
            country_name: name,
        };
        (addr, place.phone_prefix)
    }

    fn person(&mut self, registered: bool, currency: &str, company: Option<&str>) -> Person {
        let first = self.pick(&FIRST).to_string();
        let last = self.pick(&LAST).to_string();
        let n = self.rng.random_range(1..999);
        let domain = *self.pick(&[
            "example.com",
            "example.co.nz",
            "example.org",
            "mail.example.net",
        ]);
        let email = format!(
            "{}.{}{}@{}",
            first.to_lowercase(),
            last.to_lowercase(),
            n,
            domain
        );
        let (address, prefix) = self.address(currency, company);
        let phone = format!("{prefix} 555 {:04}", self.rng.random_range(0..10_000));
        let contact_id = self.id();
        let contact = Contact {
            id: contact_id,
            custom_key: None,
            first_name: Some(first.clone()),
            last_name: Some(last.clone()),
            email1: Some(email.clone()),
            phone1: Some(phone),
            address,
        };
        let user_id = if registered { Some(self.id()) } else { None };
        Person {
            user_id,
            first,
            last,
            email,
            currency: currency.to_owned(),
            contact,
        }
    }

    fn attr(key: &str, value: &str, sort: i32) -> (String, Attribute) {
        (
            key.to_owned(),
            Attribute {
                id: 0,
                key: key.to_owned(),
                value: value.to_owned(),
                uofm: String::new(),
                sort_order: Some(sort),
            },
        )
    }
}

fn pick_currency(ctx: &mut Ctx) -> &'static str {
    match ctx.rng.random_range(0..100) {
        0..40 => "NZD",
        40..65 => "AUD",
        65..80 => "USD",
        80..90 => "GBP",
        _ => "EUR",
    }
}

fn main_tax_code(ctx: &mut Ctx, currency: &str) -> &'static str {
    match currency {
        "NZD" => "GST15",
        "AUD" => "GST10",
        // Exports are zero-rated; some foreign-currency orders are domestic and taxed.
        _ if ctx.chance(0.6) => "GST0",
        _ => "GST15",
    }
}

impl Generator {
    /// A generator for `cfg` driven by `seed`.
    pub fn new(seed: u64, cfg: GenConfig) -> Self {
        Self { seed, cfg }
    }

    /// The config.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// The whole timeline, in store order (by time): accounts, then each order's lifecycle
    /// (created → maybe edited → confirmed → paid in one or two payments → shipped → completed,
    /// or voided; some completed orders get a return with a refund), interleaved across orders.
    pub fn events(&self) -> Vec<Event> {
        let store = StoreRef {
            id: self.cfg.store_id,
            custom_key: self.cfg.store.clone(),
            name: Some(self.cfg.store_name.clone()),
        };
        let mut ctx = Ctx {
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            next_id: 0,
            out: Vec::new(),
            seq: 0,
            store,
        };
        let start = self.cfg.start;
        let products = catalog();

        // B2B accounts exist before the first order.
        let n_accounts = (self.cfg.orders / 6).clamp(2, 40);
        let mut accounts: Vec<AccountState> = Vec::new();
        for i in 0..n_accounts {
            let name = COMPANIES[i % COMPANIES.len()].to_owned();
            let currency = pick_currency(&mut ctx).to_owned();
            let person = ctx.person(true, &currency, Some(&name));
            let slug: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
                .collect::<String>()
                .to_uppercase();
            let key = format!(
                "{}-{}",
                slug.split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("-"),
                100 + i
            );
            let at = start - Duration::minutes(60 - i as i64);
            let terms = *ctx.pick(&["7", "14", "20", "30"]);
            let group = *ctx.pick(&["Trade", "Wholesale", "Key accounts"]);
            let account = Account {
                id: 70 + i as i64,
                custom_key: key,
                version: 1,
                active: true,
                name: name.clone(),
                type_key: "CUSTOMER".to_owned(),
                status_key: "Active".to_owned(),
                is_taxable: true,
                tax_exemption_no: None,
                ein: None,
                created_date: at,
                updated_date: at,
                primary_contact: person.contact.clone(),
                account_contacts: vec![AccountContact {
                    id: ctx.id(),
                    first_name: Some("Receiving".to_owned()),
                    last_name: Some("Dock".to_owned()),
                    email1: None,
                    phone1: person.contact.phone1.clone(),
                    type_key: "Shipping".to_owned(),
                }],
                serializable_attributes: [
                    Ctx::attr("PaymentTermsDays", terms, 1),
                    Ctx::attr("XeroContactGroup", group, 2),
                ]
                .into_iter()
                .collect(),
            };
            ctx.emit(
                at,
                EventType::AccountCreated,
                format!("account:{}", account.id),
                1,
                &account,
            );
            accounts.push(AccountState { account, person });
        }

        let mut returning: Vec<Person> = Vec::new();
        let mut t = start;
        for n in 0..self.cfg.orders {
            t += Duration::seconds(ctx.rng.random_range(30..900));
            // Now and then an account changes between orders.
            if ctx.chance(0.08) {
                let idx = ctx.rng.random_range(0..accounts.len());
                let st = &mut accounts[idx];
                st.account.version += 1;
                st.account.updated_date = t - Duration::seconds(5);
                let phone = format!("+64 9 555 {:04}", ctx.rng.random_range(0..10_000));
                st.account.primary_contact.phone1 = Some(phone);
                let terms = *ctx.pick(&["7", "14", "20", "30", "45"]);
                st.account.serializable_attributes.insert(
                    "PaymentTermsDays".to_owned(),
                    Ctx::attr("PaymentTermsDays", terms, 1).1,
                );
                let (acc, v) = (st.account.clone(), st.account.version);
                ctx.emit(
                    t - Duration::seconds(5),
                    EventType::AccountUpdated,
                    format!("account:{}", acc.id),
                    v,
                    &acc,
                );
            }
            self.order(&mut ctx, n, t, &products, &accounts, &mut returning);
        }

        ctx.out.sort_by_key(|a| (a.0, a.1));
        ctx.out.into_iter().map(|(_, _, e)| e).collect()
    }

    fn order(
        &self,
        ctx: &mut Ctx,
        n: usize,
        created: DateTime<Utc>,
        products: &[Product],
        accounts: &[AccountState],
        returning: &mut Vec<Person>,
    ) {
        // Customer: a B2B account, a returning or new registered customer, or a guest.
        let kind = ctx.rng.random_range(0..100);
        let (account, person) = if kind < 35 {
            let a = &accounts[ctx.rng.random_range(0..accounts.len())];
            (Some(&a.account), a.person.clone())
        } else if kind < 75 {
            if !returning.is_empty() && ctx.chance(0.5) {
                let p = returning[ctx.rng.random_range(0..returning.len())].clone();
                (None, p)
            } else {
                let c = pick_currency(ctx);
                let p = ctx.person(true, c, None);
                returning.push(p.clone());
                (None, p)
            }
        } else {
            let c = pick_currency(ctx);
            (None, ctx.person(false, c, None))
        };
        let currency = person.currency.clone();
        let b2b = account.is_some();
        let tax_included = !b2b && matches!(currency.as_str(), "NZD" | "AUD") && ctx.chance(0.5);
        let review = self.cfg.review_case(n);
        let code = main_tax_code(ctx, &currency);
        let order_rate = tax_rate(code);

        let mut items = Vec::new();
        let n_lines = ctx.rng.random_range(1..=5);
        for _ in 0..n_lines {
            let p = &products[ctx.rng.random_range(0..products.len())];
            let qty = if p.uom == "M" {
                Decimal::new(ctx.rng.random_range(1..=40) * 5, 1)
            } else if p.price < Decimal::ONE {
                Decimal::from(ctx.rng.random_range(10..=500))
            } else {
                Decimal::from(ctx.rng.random_range(1..=6))
            };
            let (taxable, item_code) = if review == Some(ReviewCase::TaxCode) && items.is_empty() {
                // The first line carries the new code, whatever the product.
                (true, REVIEW_TAX_CODE)
            } else if p.exempt {
                (false, "GST0")
            } else if p.zero_rated {
                (true, "GST0")
            } else {
                (true, code)
            };
            let rate = if taxable {
                tax_rate(item_code)
            } else {
                Decimal::ZERO
            };
            let core = r4(p.price * fx(&currency));
            let sold_net = if b2b && ctx.chance(0.5) {
                r4(core * dec!(0.9))
            } else {
                core
            };
            let (core, sold) = if tax_included {
                (
                    r4(core * (Decimal::ONE + rate)),
                    r4(sold_net * (Decimal::ONE + rate)),
                )
            } else {
                (core, sold_net)
            };
            let mut attrs = Attributes::new();
            if p.sku.starts_with("WID") {
                let colour = *ctx.pick(&["Grey", "Black", "Zinc"]);
                attrs.extend([Ctx::attr("Colour", colour, 1)]);
            }
            items.push(SalesOrderItem {
                id: ctx.id(),
                product_id: p.id,
                product_key: p.sku.to_owned(),
                sku: p.sku.to_owned(),
                name: p.name.to_owned(),
                quantity: qty,
                quantity_back_ordered: Decimal::ZERO,
                unit_of_measure: p.uom.to_owned(),
                unit_core_price: core,
                unit_sold_price: sold,
                product_is_taxable: taxable,
                product_tax_code: item_code.to_owned(),
                extended_tax_amount: Decimal::ZERO,
                discounts: Vec::new(),
                serializable_attributes: attrs,
            });
        }

        let pickup = ctx.chance(0.1);
        let mut discounts = Vec::new();
        if ctx.chance(0.2) {
            discounts.push(DiscountSpec::Fixed {
                id: 12,
                code: "WELCOME5",
                amount: dec!(5.00),
            });
        }
        if b2b && ctx.chance(0.3) || ctx.chance(0.1) {
            discounts.push(DiscountSpec::Percent {
                id: 14,
                code: "TRADE10",
                pct: dec!(10),
            });
        }
        let mut charges = Charges {
            shipping: if pickup {
                Decimal::ZERO
            } else {
                ctx.money(500, 2500)
            },
            handling: if ctx.chance(0.25) {
                dec!(2.50)
            } else {
                Decimal::ZERO
            },
            fees: if ctx.chance(0.1) {
                ctx.money(100, 450)
            } else {
                Decimal::ZERO
            },
            order_rate,
            discounts,
        };

        let order_id = 1000 + n as i64;
        let (ship_addr, _) = ctx.address(&currency, account.map(|a| a.name.as_str()));
        let same = ctx.chance(0.5);
        let shipping_contact = if same {
            person.contact.clone()
        } else {
            let id = ctx.id();
            Contact {
                id,
                address: ship_addr,
                ..person.contact.clone()
            }
        };
        let mut attrs: Attributes = [
            Ctx::attr(
                "SalesChannel",
                if review == Some(ReviewCase::Channel) {
                    REVIEW_CHANNEL
                } else if b2b {
                    "B2B Portal"
                } else {
                    ctx.pick_str(&CHANNELS)
                },
                1,
            ),
            Ctx::attr("CampaignSource", ctx.pick_str(&CAMPAIGNS), 2),
        ]
        .into_iter()
        .collect();
        if currency == "NZD" {
            let region = if ctx.chance(0.6) {
                "North Island"
            } else {
                "South Island"
            };
            attrs.extend([Ctx::attr("XeroTrackingRegion", region, 3)]);
        }
        let mut o = SalesOrder {
            id: order_id,
            custom_key: format!("SO-{:06}", order_id),
            active: true,
            created_date: created,
            updated_date: created,
            version: 1,
            type_key: if ctx.chance(0.85) { "Web" } else { "Phone" }.to_owned(),
            status_key: "Pending".to_owned(),
            status_name: "Pending".to_owned(),
            state_key: "WORK".to_owned(),
            currency_key: currency.clone(),
            tax_included,
            purchase_order_number: if b2b && ctx.chance(0.7) {
                Some(format!("PO-{}", ctx.rng.random_range(1000..99999)))
            } else {
                None
            },
            due_date: if b2b {
                Some(created + Duration::days(30))
            } else {
                None
            },
            balance_due: Decimal::ZERO,
            account_id: account.map(|a| a.id),
            account_key: account.map(|a| a.custom_key.clone()),
            account_name: account.map(|a| a.name.clone()),
            user_id: person.user_id,
            user_key: person.user_id.map(|_| person.email.clone()),
            user_contact_email: Some(person.email.clone()),
            user_contact_first_name: Some(person.first.clone()),
            user_contact_last_name: Some(person.last.clone()),
            shipping_same_as_billing: same,
            billing_contact: person.contact.clone(),
            shipping_contact,
            totals: Totals::default(),
            shipping_detail: ShippingDetail {
                carrier_name: if pickup {
                    "Pickup"
                } else {
                    ctx.pick(&["NZ Post", "CourierPost", "DHL", "UPS"])
                }
                .to_owned(),
                carrier_method_name: ctx.pick(&["Standard", "Overnight", "Economy"]).to_string(),
                tracking_number: None,
            },
            sales_items: items,
            discounts: Vec::new(),
            sales_order_payments: Vec::new(),
            serializable_attributes: attrs,
            notes: Vec::new(),
            previous_status_key: None,
        };
        if ctx.chance(0.2) {
            let id = ctx.id();
            o.notes.push(Note {
                id,
                note1: "Please deliver before 4pm".to_owned(),
                created_date: created,
            });
        }
        price(&mut o, &charges);
        let key = format!("order:{}", o.id);
        let card = !b2b || ctx.chance(0.3);

        // Paid at checkout by card, sometimes.
        if card && ctx.chance(0.4) {
            let amount = o.totals.total;
            add_payment(
                ctx,
                &mut o,
                amount,
                created - Duration::milliseconds(370),
                true,
            );
        }
        ctx.emit(created, EventType::SalesOrderCreated, key.clone(), 1, &o);

        let mut t = created;
        let step = |ctx: &mut Ctx, t: &mut DateTime<Utc>| {
            *t += Duration::seconds(ctx.rng.random_range(60..7200));
            *t
        };
        let bump = |o: &mut SalesOrder, at: DateTime<Utc>| {
            o.version += 1;
            o.updated_date = at;
            o.previous_status_key = None;
        };

        // Edits: custom fields, addresses, or (before any payment) quantities, which move totals.
        if ctx.chance(0.2) {
            let at = step(ctx, &mut t);
            bump(&mut o, at);
            if o.sales_order_payments.is_empty() && ctx.chance(0.6) {
                let idx = ctx.rng.random_range(0..o.sales_items.len());
                o.sales_items[idx].quantity += Decimal::ONE;
                if ctx.chance(0.3) {
                    charges.shipping = ctx.money(500, 3000);
                }
                price(&mut o, &charges);
            } else {
                o.serializable_attributes.extend([Ctx::attr(
                    "CampaignSource",
                    "sales-rep-edit",
                    2,
                )]);
                o.shipping_contact.phone1 = Some("+64 21 555 0123".to_owned());
            }
            ctx.emit(at, EventType::SalesOrderUpdated, key.clone(), o.version, &o);
        }

        // Unpaid orders are sometimes cancelled.
        if o.sales_order_payments.is_empty() && ctx.chance(0.12) {
            let at = step(ctx, &mut t);
            bump(&mut o, at);
            set_status(&mut o, "Void");
            o.state_key = "HISTORY".to_owned();
            o.active = false;
            ctx.emit(at, EventType::SalesOrderVoided, key, o.version, &o);
            return;
        }

        let at = step(ctx, &mut t);
        status_change(ctx, &mut o, at, "Confirmed", &key);

        // Payments: one full, or a partial then the rest; some B2B orders stay on account.
        if o.sales_order_payments.is_empty() {
            let stays_unpaid = b2b && ctx.chance(0.25);
            if !stays_unpaid {
                let total = o.totals.total;
                if ctx.chance(0.25) && total > dec!(1.00) {
                    let pct = Decimal::from(ctx.rng.random_range(20..80));
                    let part = r2(total * pct / dec!(100));
                    let at = step(ctx, &mut t);
                    bump(&mut o, at);
                    add_payment(ctx, &mut o, part, at, card);
                    set_status(&mut o, "Partial Payment Received");
                    ctx.emit(at, EventType::SalesOrderPaid, key.clone(), o.version, &o);
                    if ctx.chance(0.8) {
                        let at = step(ctx, &mut t);
                        bump(&mut o, at);
                        add_payment(ctx, &mut o, total - part, at, card);
                        set_status(&mut o, "Full Payment Received");
                        ctx.emit(at, EventType::SalesOrderPaid, key.clone(), o.version, &o);
                    }
                } else {
                    let at = step(ctx, &mut t);
                    bump(&mut o, at);
                    add_payment(ctx, &mut o, total, at, card);
                    set_status(&mut o, "Full Payment Received");
                    ctx.emit(at, EventType::SalesOrderPaid, key.clone(), o.version, &o);
                }
            }
        }

        // Fulfilment; some orders are still in flight when the timeline ends.
        for next in ["Processing", "Shipped", "Completed"] {
            if ctx.chance(0.1) {
                return;
            }
            let at = step(ctx, &mut t);
            if next == "Shipped" {
                o.shipping_detail.tracking_number = Some(format!(
                    "TRK{:010}",
                    ctx.rng.random_range(0..10_000_000_000u64)
                ));
            }
            if next == "Completed" {
                o.state_key = "HISTORY".to_owned();
            }
            status_change(ctx, &mut o, at, next, &key);
        }

        // Returns with refunds, only against fully paid orders.
        if o.balance_due == Decimal::ZERO && !o.sales_order_payments.is_empty() && ctx.chance(0.15)
        {
            let at = step(ctx, &mut t);
            let ret = make_return(ctx, &o, at);
            ctx.emit(at, EventType::SalesReturnCompleted, key, ret.version, &ret);
        }
    }
}

fn set_status(o: &mut SalesOrder, status: &str) {
    o.status_key = status.to_owned();
    o.status_name = status.to_owned();
}

fn status_change(ctx: &mut Ctx, o: &mut SalesOrder, at: DateTime<Utc>, status: &str, key: &str) {
    let previous = o.status_key.clone();
    o.version += 1;
    o.updated_date = at;
    set_status(o, status);
    o.previous_status_key = Some(previous);
    ctx.emit(
        at,
        EventType::SalesOrderStatusChanged,
        key.to_owned(),
        o.version,
        o,
    );
    o.previous_status_key = None;
}

fn add_payment(ctx: &mut Ctx, o: &mut SalesOrder, amount: Decimal, at: DateTime<Utc>, card: bool) {
    let id = 7000 + ctx.id();
    let method = if card {
        *ctx.pick(&["Credit Card", "PayPal"])
    } else {
        "Bank Transfer"
    };
    let txn = format!("txn_{:08x}", ctx.rng.random::<u32>());
    let last4 =
        (method == "Credit Card").then(|| format!("{:04}", ctx.rng.random_range(0..10_000)));
    o.sales_order_payments.push(SalesOrderPayment {
        slave_id: id,
        payment: Payment {
            id,
            amount,
            currency_key: o.currency_key.clone(),
            status_key: "Payment Received".to_owned(),
            payment_method_key: method.to_owned(),
            transaction_number: txn,
            last4_card_digits: last4,
            authorized: true,
            received: true,
            received_date: Some(at),
        },
    });
    o.balance_due = o.totals.total - o.amount_paid();
}

fn make_return(ctx: &mut Ctx, o: &SalesOrder, at: DateTime<Utc>) -> SalesReturn {
    let id = 80 + ctx.id();
    let undiscounted: Vec<&SalesOrderItem> = o
        .sales_items
        .iter()
        .filter(|i| i.discounts.is_empty())
        .collect();
    let full = undiscounted.is_empty() || ctx.chance(0.3);
    let (items, totals) = if full {
        let items = o
            .sales_items
            .iter()
            .map(|i| return_item(ctx, i, i.quantity, i.extended_tax_amount))
            .collect::<Vec<_>>();
        (items, o.totals)
    } else {
        let line = undiscounted[ctx.rng.random_range(0..undiscounted.len())];
        let whole = line.quantity.trunc();
        let qty = match whole.to_i64() {
            Some(w) if w >= 2 => Decimal::from(ctx.rng.random_range(1..=w)),
            _ => line.quantity,
        };
        let net = line_net(qty, line.unit_sold_price, item_rate(line), o.tax_included);
        let tax4 = r4(net * item_rate(line));
        let item = return_item(ctx, line, qty, tax4);
        let mut t = Totals {
            sub_total: net,
            tax: r2(net * item_rate(line)),
            ..Totals::default()
        };
        t.total = t.computed_total();
        (vec![item], t)
    };
    let original = &o.sales_order_payments[0].payment;
    SalesReturn {
        id,
        custom_key: format!("RMA-{id:06}"),
        version: 1,
        sales_order_id: o.id,
        sales_order_key: o.custom_key.clone(),
        sales_order_version: o.version,
        status_key: "Completed".to_owned(),
        created_date: at - Duration::minutes(5),
        updated_date: at,
        currency_key: o.currency_key.clone(),
        tax_included: o.tax_included,
        reason: ctx
            .pick(&[
                "Damaged in transit",
                "Wrong item",
                "No longer needed",
                "Faulty",
            ])
            .to_string(),
        sales_items: items,
        totals,
        refund_payments: vec![RefundPayment {
            id: 7000 + ctx.id(),
            amount: totals.total,
            currency_key: o.currency_key.clone(),
            status_key: "Refunded".to_owned(),
            payment_method_key: original.payment_method_key.clone(),
            transaction_number: format!("re_{:08x}", ctx.rng.random::<u32>()),
            original_payment_id: original.id,
            received_date: at - Duration::seconds(1),
        }],
        serializable_attributes: BTreeMap::new(),
    }
}

fn return_item(ctx: &mut Ctx, i: &SalesOrderItem, qty: Decimal, tax: Decimal) -> SalesReturnItem {
    SalesReturnItem {
        id: 9000 + ctx.id(),
        sales_order_item_id: i.id,
        sku: i.sku.clone(),
        name: i.name.clone(),
        quantity: qty,
        unit_sold_price: i.unit_sold_price,
        product_is_taxable: i.product_is_taxable,
        product_tax_code: i.product_tax_code.clone(),
        extended_tax_amount: tax,
    }
}
