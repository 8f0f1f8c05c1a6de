//! One resolution round for contacts the cache did not know: claim them, search Xero for them
//! (one `where` per ~36 contacts), create the rest (one `PUT` per batch), remember the answers
//! in the cache, release the claims.

use super::claim::{self, Claim};
use super::{ContactSpec, Origin, Resolved, cached_id, details_hash, disambiguated, read_all};
use crate::terms::{KnownTerms, Terms, know};
use async_nats::jetstream::kv;
use futures::StreamExt;
use ledgerline_xero_client::model::Contact;
use ledgerline_xero_client::model::send::envelope;
use ledgerline_xero_client::{Client, Element, Refusal, Response};
use reqwest::Method;
use std::collections::HashMap;
use std::sync::Arc;

/// A contact the cache did not know.
#[derive(Debug, Clone)]
pub(super) struct Miss {
    /// What to find or create.
    pub spec: ContactSpec,
    /// Its CONTACTS key.
    pub key: String,
    /// The spec is the customer's own record (the CUSTOMERS path): a contact created from it is
    /// cached with its details hash, so the same details later need no update.
    pub own_record: bool,
}

/// How a miss came out of a round.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    /// Resolved here.
    Done(Resolved),
    /// Another worker holds the claim: wait for its answer (under this cache key).
    Wait(String),
}

/// Longest `where` a search sends, URL-encoded. Xero answers 404 to URLs past about 2,000
/// characters (FACTS.md §2: 52 GUIDs in `IDs` worked, 53 did not); the rest of a search's URL
/// (`https://api.xero.com/api.xro/2.0/Contacts?where=`, `&pageSize=1000&summaryOnly=true`) is 79.
pub(super) const MAX_WHERE: usize = 1_900;

fn quote_ok(s: &str) -> bool {
    !s.contains('"') && !s.contains('\\')
}

/// The one `where` term a spec is searched by: its email (the contact we created carries it, and
/// the "only active contact with this email" rule needs it), else its ContactNumber. A contact
/// of ours whose email has since changed is not found this way: its `PUT` then meets "already
/// exists" and the contact is adopted by its number, so the outcome is the same.
fn term(s: &ContactSpec) -> Option<String> {
    if !s.email_address.is_empty() && quote_ok(&s.email_address) {
        Some(format!("EmailAddress==\"{}\"", s.email_address))
    } else if quote_ok(&s.contact_number) {
        Some(format!("ContactNumber==\"{}\"", s.contact_number))
    } else {
        None
    }
}

fn encoded_len(s: &str) -> usize {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .map(str::len)
        .sum()
}

/// Specs cut into searches whose `where` stays within `max` encoded characters; specs that
/// cannot be searched for come back apart (they are created, and "already exists" covers them).
pub(super) fn searches(
    specs: &[ContactSpec],
    max: usize,
) -> (Vec<Vec<(usize, String)>>, Vec<usize>) {
    let (mut out, mut unsearchable) = (Vec::new(), Vec::new());
    let (mut current, mut len): (Vec<(usize, String)>, usize) = (Vec::new(), 0);
    for (i, s) in specs.iter().enumerate() {
        let Some(t) = term(s) else {
            unsearchable.push(i);
            continue;
        };
        let add = encoded_len(&t)
            + if current.is_empty() {
                0
            } else {
                encoded_len(" OR ")
            };
        if !current.is_empty() && len + add > max {
            out.push(std::mem::take(&mut current));
            len = 0;
        }
        len += if current.is_empty() {
            encoded_len(&t)
        } else {
            add
        };
        current.push((i, t));
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, unsearchable)
}

/// What a round works with: the tenant's client and cache, the batch size of a create, and the
/// tenant's known terms (filled in for contacts it creates).
#[derive(Debug, Clone)]
pub(super) struct Round {
    pub client: Arc<Client>,
    pub cache: kv::Store,
    pub batch: usize,
    pub terms: KnownTerms,
}

impl Round {
    /// Resolves `misses` (unique by ContactNumber), spending as few calls as it can.
    pub(super) async fn run(&self, misses: Vec<Miss>) -> HashMap<String, Outcome> {
        run(self, misses).await
    }
}

async fn run(round: &Round, misses: Vec<Miss>) -> HashMap<String, Outcome> {
    let (client, cache, batch) = (&*round.client, &round.cache, round.batch);
    let mut out = HashMap::new();
    // The cache once more: the round before this one may have just created them.
    let hits = read_all(cache, misses.iter().map(|m| m.key.clone()).collect()).await;
    let mut todo = Vec::new();
    for (m, hit) in misses.into_iter().zip(hits) {
        match hit {
            Ok(Some(v)) if !v.is_empty() => {
                out.insert(
                    m.spec.contact_number.clone(),
                    Outcome::Done(Resolved::Id(cached_id(&v), Origin::Cached)),
                );
            }
            _ => todo.push(m),
        }
    }
    let keyed = todo.into_iter().map(|m| {
        let key = m.key.clone();
        (m, key)
    });
    let mut mine = Vec::new();
    let mut claims = Vec::new();
    for (m, c) in claim::claim_all(cache, keyed.collect()).await {
        match c {
            Claim::Ours(k) => {
                claims.push(k);
                mine.push(m);
            }
            Claim::Theirs => {
                out.insert(m.spec.contact_number.clone(), Outcome::Wait(m.key));
            }
        }
    }
    if mine.is_empty() {
        return out;
    }
    let work = async {
        let specs: Vec<ContactSpec> = mine.iter().map(|m| m.spec.clone()).collect();
        let (mut resolved, to_create) = search(client, &specs).await;
        resolved.extend(create(client, to_create, batch).await);
        remember(cache, &mine, &resolved).await;
        for m in &mine {
            // Created now: its terms are the ones sent.
            if let Some(Resolved::Id(id, Origin::Created)) = resolved.get(&m.spec.contact_number) {
                let terms = m.spec.payment_terms.as_ref().and_then(Terms::sales_of);
                know(&round.terms, id, terms);
            }
        }
        resolved
    };
    let resolved = tokio::select! {
        r = work => r,
        never = claim::renew(cache, &claims) => match never {},
    };
    claim::release(cache, &claims).await;
    for m in &mine {
        let r = resolved
            .get(&m.spec.contact_number)
            .cloned()
            .unwrap_or_else(|| Resolved::Transient("contact not resolved".into()));
        out.insert(m.spec.contact_number.clone(), Outcome::Done(r));
    }
    out
}

/// Finds existing contacts: by ContactNumber, else the only active contact with the email.
async fn search(
    client: &Client,
    specs: &[ContactSpec],
) -> (HashMap<String, Resolved>, Vec<ContactSpec>) {
    let mut out = HashMap::new();
    let (chunks, unsearchable) = searches(specs, MAX_WHERE);
    let mut to_create: Vec<ContactSpec> = unsearchable.iter().map(|&i| specs[i].clone()).collect();
    for chunk in chunks {
        let terms: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        let found: Result<Response, _> = client
            .call(
                Method::GET,
                "/Contacts",
                // Only ids, numbers, emails and statuses are needed: the lighter object.
                &[
                    ("where", terms.join(" OR ")),
                    ("pageSize", "1000".into()),
                    ("summaryOnly", "true".into()),
                ],
                None,
            )
            .await;
        let list = match found {
            Ok(v) => v.contacts,
            Err(e) => {
                for (i, _) in &chunk {
                    out.insert(
                        specs[*i].contact_number.clone(),
                        Resolved::Transient(e.to_string()),
                    );
                }
                continue;
            }
        };
        for (i, _) in &chunk {
            let s = &specs[*i];
            match matching(&list, s) {
                Some(id) => {
                    out.insert(s.contact_number.clone(), Resolved::Id(id, Origin::Found));
                }
                None => to_create.push(s.clone()),
            }
        }
    }
    (out, to_create)
}

/// The contact in `list` that `s` is: the one with its ContactNumber, else the only active one
/// with its email. Never by name.
fn matching(list: &[Contact], s: &ContactSpec) -> Option<String> {
    let by_number = list.iter().find(|c| c.contact_number == s.contact_number);
    let by_email: Vec<&Contact> = if s.email_address.is_empty() {
        vec![]
    } else {
        list.iter()
            .filter(|c| {
                c.contact_status == "ACTIVE"
                    && c.email_address.eq_ignore_ascii_case(&s.email_address)
            })
            .collect()
    };
    by_number
        .or(if by_email.len() == 1 {
            Some(by_email[0])
        } else {
            None
        })
        .map(|c| c.contact_id.clone())
        .filter(|id| !id.is_empty())
}

/// Creates contacts; a taken name is retried once with the email (or number) in brackets, and a
/// taken ContactNumber (ours, from an earlier unconfirmed attempt, or one whose email changed)
/// is adopted.
async fn create(
    client: &Client,
    specs: Vec<ContactSpec>,
    batch: usize,
) -> HashMap<String, Resolved> {
    let mut out = HashMap::new();
    let mut round = apart(specs);
    for attempt in 0..2 {
        let mut retry = Vec::new();
        for chunk in round.chunks(batch.max(1)) {
            let resp = client
                .call(
                    Method::PUT,
                    "/Contacts",
                    &[("summarizeErrors", "false".into())],
                    Some(envelope("Contacts", chunk)),
                )
                .await;
            let els = match resp {
                Ok(v) => v.contacts,
                Err(e) => {
                    for s in chunk {
                        let r = if e.is_transient() {
                            Resolved::Transient(e.to_string())
                        } else {
                            Resolved::Refused(e.to_string())
                        };
                        out.insert(s.contact_number.clone(), r);
                    }
                    continue;
                }
            };
            for (i, s) in chunk.iter().enumerate() {
                let Some(el) = els.get(i) else {
                    out.insert(
                        s.contact_number.clone(),
                        Resolved::Transient("missing element".into()),
                    );
                    continue;
                };
                let Some(refusal) = el.refusal() else {
                    out.insert(
                        s.contact_number.clone(),
                        Resolved::Id(el.contact_id.clone(), Origin::Created),
                    );
                    continue;
                };
                let errors = refusal.message().to_owned();
                if matches!(refusal, Refusal::DuplicateContactNumber(_)) {
                    out.insert(s.contact_number.clone(), adopt(client, s, errors).await);
                } else if matches!(refusal, Refusal::DuplicateContactName(_)) && attempt == 0 {
                    let mut s2 = s.clone();
                    s2.name = disambiguated(s);
                    retry.push(s2);
                } else {
                    out.insert(s.contact_number.clone(), Resolved::Refused(errors));
                }
            }
        }
        if retry.is_empty() {
            break;
        }
        round = retry;
    }
    out
}

/// Specs that share a name in one request would refuse each other ("already assigned"): all
/// but the first go disambiguated from the start, saving the retry.
fn apart(mut specs: Vec<ContactSpec>) -> Vec<ContactSpec> {
    let mut seen = std::collections::HashSet::new();
    for s in &mut specs {
        if !seen.insert(s.name.to_lowercase()) {
            s.name = disambiguated(s);
        }
    }
    specs
}

/// The existing contact with `s`'s ContactNumber.
async fn adopt(client: &Client, s: &ContactSpec, errors: String) -> Resolved {
    match client
        .call(
            Method::GET,
            &format!("/Contacts/{}", s.contact_number),
            &[],
            None,
        )
        .await
    {
        Ok(v) => v
            .contacts
            .first()
            .filter(|c| !c.contact_id.is_empty())
            .map(|c| Resolved::Id(c.contact_id.clone(), Origin::Found))
            .unwrap_or(Resolved::Refused(errors)),
        Err(e) if e.is_transient() => Resolved::Transient(e.to_string()),
        Err(e) => Resolved::Refused(format!("{errors} ({e})")),
    }
}

/// Writes what the round learnt to the cache, before the claims are released (waiters read it).
async fn remember(cache: &kv::Store, mine: &[Miss], resolved: &HashMap<String, Resolved>) {
    let puts: Vec<_> = mine
        .iter()
        .filter_map(|m| {
            let Some(Resolved::Id(id, origin)) = resolved.get(&m.spec.contact_number) else {
                return None;
            };
            let value = if *origin == Origin::Created && m.own_record {
                format!("{id} {}", details_hash(&m.spec))
            } else {
                id.clone()
            };
            let key = m.key.clone();
            Some(async move { cache.put(key, value.into_bytes().into()).await })
        })
        .collect();
    futures::stream::iter(puts)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(number: &str, email: &str) -> ContactSpec {
        ContactSpec {
            name: number.into(),
            contact_number: number.into(),
            first_name: String::new(),
            last_name: String::new(),
            email_address: email.into(),
            addresses: vec![],
            account_number: String::new(),
            tax_number: String::new(),
            payment_terms: None,
            identity: number.into(),
        }
    }

    #[test]
    fn a_search_carries_one_term_per_contact_within_the_url_budget() {
        let specs: Vec<ContactSpec> = (0..200)
            .map(|i| {
                spec(
                    &format!("main:c{i}"),
                    &format!("customer{i:03}@example.com"),
                )
            })
            .collect();
        let (chunks, unsearchable) = searches(&specs, MAX_WHERE);
        assert!(unsearchable.is_empty());
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 200);
        for c in &chunks {
            let terms: Vec<&str> = c.iter().map(|(_, t)| t.as_str()).collect();
            assert!(encoded_len(&terms.join(" OR ")) <= MAX_WHERE);
            assert!(terms.iter().all(|t| t.starts_with("EmailAddress==")));
        }
        // About 36 a search, not 20 as with a number and an email each.
        assert!(chunks.len() <= 6, "{} searches", chunks.len());
    }

    #[test]
    fn a_contact_without_email_is_searched_by_number_and_an_unquotable_one_not_at_all() {
        let specs = vec![
            spec("main:a", ""),
            spec("main:\"b", ""),
            spec("main:c", "c\"@example.com"),
        ];
        let (chunks, unsearchable) = searches(&specs, MAX_WHERE);
        assert_eq!(chunks.len(), 1);
        let terms: Vec<&str> = chunks[0].iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            terms,
            ["ContactNumber==\"main:a\"", "ContactNumber==\"main:c\""]
        );
        assert_eq!(unsearchable, vec![1]);
    }

    #[test]
    fn same_names_in_one_request_go_apart_from_the_start() {
        let mut a = spec("main:a", "a@example.com");
        let mut b = spec("main:b", "b@example.com");
        let mut c = spec("main:c", "");
        for s in [&mut a, &mut b, &mut c] {
            s.name = "Jo Smith".into();
        }
        let names: Vec<String> = apart(vec![a, b, c]).into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["Jo Smith", "Jo Smith (b@example.com)", "Jo Smith (main:c)"]
        );
    }

    #[test]
    fn matching_never_goes_by_name_and_needs_exactly_one_active_email() {
        let c = |id: &str, number: &str, email: &str, status: &str| Contact {
            contact_id: id.into(),
            contact_number: number.into(),
            email_address: email.into(),
            contact_status: status.into(),
            name: "Same Name".into(),
            ..Default::default()
        };
        let s = spec("main:x", "x@example.com");
        assert_eq!(
            matching(&[c("1", "main:x", "other@example.com", "ACTIVE")], &s),
            Some("1".into())
        );
        assert_eq!(
            matching(&[c("2", "", "X@example.com", "ACTIVE")], &s),
            Some("2".into())
        );
        let two = [
            c("2", "", "x@example.com", "ACTIVE"),
            c("3", "", "x@example.com", "ACTIVE"),
        ];
        assert_eq!(matching(&two, &s), None);
        assert_eq!(
            matching(&[c("4", "", "x@example.com", "ARCHIVED")], &s),
            None
        );
        assert_eq!(matching(&[c("5", "", "", "ACTIVE")], &s), None);
    }
}
