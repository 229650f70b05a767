//! The economy file: currencies, item definitions and store listings, read once at start.
//!
//! asobi keeps items and listings in tables written through its ops plane; asobi-rs has no ops
//! plane yet, so an operator declares them in a JSON file instead: `ASOBI_ECONOMY_FILE` if set,
//! else `economy.json` in the game directory, else none (no items, no listings, any currency).
//! A file that does not parse or contradicts itself stops the server at start, never mid-game.
//! The file is not hot-reloaded: inventory rows and ledger references name these ids, so a
//! change is an operator's decision taken with a restart.
//!
//! ```json
//! { "currencies": ["gold", "gems"],
//!   "items": [{ "id": "0198…", "slug": "sword_of_fire", "name": "Sword of Fire",
//!               "category": "weapon", "rarity": "rare", "stackable": false, "metadata": {} }],
//!   "listings": [{ "id": "0198…", "item": "sword_of_fire", "currency": "gold", "price": 500,
//!                  "active": true, "valid_from": null, "valid_until": null, "metadata": {} }] }
//! ```
//!
//! `currencies` is optional: when present, a grant, debit, listing or history in another
//! currency is refused (`economy.unknown_currency`); when absent any name is accepted, as on
//! asobi. A listing's `item` is an item's `id` or `slug`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The variable naming the economy file.
pub(crate) const ECONOMY_FILE_ENV: &str = "ASOBI_ECONOMY_FILE";
/// The file looked for in the game directory when the variable is unset.
pub(crate) const DEFAULT_FILE: &str = "economy.json";
/// asobi's rarities; anything else is refused.
const RARITIES: &[&str] = &["common", "uncommon", "rare", "epic", "legendary"];

/// One item definition, as `GET /ops/economy/items` shows it on asobi.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemDef {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) category: String,
    #[serde(default = "common")]
    pub(crate) rarity: String,
    #[serde(default = "yes")]
    pub(crate) stackable: bool,
    #[serde(default = "empty_object")]
    pub(crate) metadata: Value,
}

/// One store listing, in the shape `GET /store` answers.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Listing {
    pub(crate) id: String,
    pub(crate) item_def_id: String,
    pub(crate) currency: String,
    pub(crate) price: i64,
    pub(crate) active: bool,
    pub(crate) valid_from: Option<String>,
    pub(crate) valid_until: Option<String>,
    pub(crate) metadata: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingFile {
    id: String,
    item: String,
    currency: String,
    price: i64,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default = "empty_object")]
    metadata: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    currencies: Option<Vec<String>>,
    #[serde(default)]
    items: Vec<ItemDef>,
    #[serde(default)]
    listings: Vec<ListingFile>,
}

fn common() -> String {
    "common".to_owned()
}
fn yes() -> bool {
    true
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Items, listings and the currency list, immutable once loaded.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    currencies: Option<BTreeSet<String>>,
    pub(crate) items: Vec<ItemDef>,
    pub(crate) listings: Vec<Listing>,
}

impl Catalog {
    /// The file `ASOBI_ECONOMY_FILE` names, else `<game_dir>/economy.json`, else an empty
    /// catalogue.
    pub(crate) fn load(game_dir: &Path) -> Result<Catalog, String> {
        let path = match std::env::var_os(ECONOMY_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                let p = game_dir.join(DEFAULT_FILE);
                if !p.exists() {
                    return Ok(Catalog::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("economy file {}: {e}", path.display()))?;
        Catalog::parse(&text).map_err(|e| format!("economy file {}: {e}", path.display()))
    }

    /// Parses and checks a catalogue: unique ids and slugs, known rarities, positive prices,
    /// listings naming a defined item and (when declared) a known currency.
    pub(crate) fn parse(text: &str) -> Result<Catalog, String> {
        let file: CatalogFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let currencies = file
            .currencies
            .map(|c| c.into_iter().collect::<BTreeSet<_>>());
        let mut ids = BTreeSet::new();
        let mut slugs = BTreeSet::new();
        for item in &file.items {
            if item.id.is_empty() || !ids.insert(item.id.clone()) {
                return Err(format!("item id {:?} is empty or repeated", item.id));
            }
            if !slugs.insert(item.slug.clone()) {
                return Err(format!("item slug {:?} is repeated", item.slug));
            }
            if !RARITIES.contains(&item.rarity.as_str()) {
                return Err(format!(
                    "item {:?}: rarity must be one of {RARITIES:?}",
                    item.slug
                ));
            }
        }
        let mut listings = Vec::with_capacity(file.listings.len());
        for l in file.listings {
            let Some(item) = file
                .items
                .iter()
                .find(|i| i.id == l.item || i.slug == l.item)
            else {
                return Err(format!("listing {:?}: no item {:?}", l.id, l.item));
            };
            if l.price <= 0 {
                return Err(format!("listing {:?}: price must be positive", l.id));
            }
            if currencies
                .as_ref()
                .is_some_and(|c| !c.contains(&l.currency))
            {
                return Err(format!(
                    "listing {:?}: currency {:?} is not declared",
                    l.id, l.currency
                ));
            }
            if l.id.is_empty() || listings.iter().any(|o: &Listing| o.id == l.id) {
                return Err(format!("listing id {:?} is empty or repeated", l.id));
            }
            listings.push(Listing {
                id: l.id,
                item_def_id: item.id.clone(),
                currency: l.currency,
                price: l.price,
                active: l.active,
                valid_from: l.valid_from,
                valid_until: l.valid_until,
                metadata: l.metadata,
            });
        }
        Ok(Catalog {
            currencies,
            items: file.items,
            listings,
        })
    }

    /// Whether `currency` may be used: declared, or any when none are declared.
    pub(crate) fn knows_currency(&self, currency: &str) -> bool {
        self.currencies
            .as_ref()
            .is_none_or(|c| c.contains(currency))
    }

    pub(crate) fn item(&self, id: &str) -> Option<&ItemDef> {
        self.items.iter().find(|i| i.id == id)
    }

    pub(crate) fn listing(&self, id: &str) -> Option<&Listing> {
        self.listings.iter().find(|l| l.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
      "currencies": ["gold"],
      "items": [{"id": "i1", "slug": "sword", "name": "Sword", "category": "weapon", "rarity": "rare"}],
      "listings": [
        {"id": "l1", "item": "sword", "currency": "gold", "price": 500},
        {"id": "l2", "item": "i1", "currency": "gold", "price": 5, "active": false}
      ]
    }"#;

    #[test]
    fn a_valid_file_loads_with_defaults() {
        let c = Catalog::parse(FILE).unwrap();
        assert!(c.items[0].stackable);
        let l1 = c.listing("l1").unwrap();
        assert_eq!(
            (l1.item_def_id.as_str(), l1.price, l1.active),
            ("i1", 500, true)
        );
        assert!(!c.listing("l2").unwrap().active);
        assert!(c.knows_currency("gold"));
        assert!(!c.knows_currency("gems"));
        assert!(Catalog::default().knows_currency("anything"));
    }

    #[test]
    fn contradictions_are_refused() {
        let bad = [
            FILE.replace("\"rare\"", "\"mythic\""),
            FILE.replace("\"price\": 500", "\"price\": 0"),
            FILE.replace("\"item\": \"sword\"", "\"item\": \"axe\""),
            FILE.replace("\"id\": \"l2\"", "\"id\": \"l1\""),
            FILE.replace("\"currencies\": [\"gold\"]", "\"currencies\": [\"gems\"]"),
            FILE.replace("\"category\"", "\"colour\": 1, \"category\""),
        ];
        for text in bad {
            assert!(Catalog::parse(&text).is_err(), "{text}");
        }
    }
}
