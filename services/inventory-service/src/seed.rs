//! Initial stock: `--seed-stock SKU=QTY,...` (env `SEED_STOCK`), applied at
//! start-up, and [`seed_stock`] for tests.
//!
//! Seeding *initialises* SKUs: a SKU that already has a stock row is left as
//! it is (`INSERT … ON CONFLICT DO NOTHING`). Restarting the service with the
//! same `SEED_STOCK` therefore neither undoes committed sales nor drops
//! `on_hand` below what open reservations hold.

use std::str::FromStr;

use sqlx::PgConnection;

/// A failed seeding step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// An entry of the seed list is not `SKU=QTY` with a quantity ≥ 0.
    #[error("invalid stock seed entry `{entry}`: {reason}")]
    Parse {
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Inserting the stock rows failed.
    #[error("could not insert seed stock: {0}")]
    Insert(#[source] sqlx::Error),
}

/// A parsed seed list, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedStock(pub Vec<(String, i64)>);

impl FromStr for SeedStock {
    type Err = SeedError;

    /// Parses `SKU=QTY,SKU=QTY`; blanks around entries are ignored and an
    /// empty string is an empty list.
    fn from_str(s: &str) -> Result<Self, SeedError> {
        let parse = |entry: &str| {
            let bad = |reason: &str| SeedError::Parse { entry: entry.to_owned(), reason: reason.to_owned() };
            let (sku, qty) = entry.split_once('=').ok_or_else(|| bad("expected SKU=QTY"))?;
            let sku = sku.trim();
            if sku.is_empty() {
                return Err(bad("empty SKU"));
            }
            let qty: i64 = qty.trim().parse().map_err(|_| bad("quantity is not an integer"))?;
            if qty < 0 {
                return Err(bad("quantity is negative"));
            }
            Ok((sku.to_owned(), qty))
        };
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse)
            .collect::<Result<_, _>>()
            .map(SeedStock)
    }
}

/// Inserts a stock row `(sku, on_hand = qty, reserved = 0)` for every SKU
/// that has none; existing rows are untouched. Returns how many were
/// inserted. A SKU listed twice takes its first quantity.
pub async fn seed_stock(conn: &mut PgConnection, stock: &[(String, i64)]) -> Result<u64, SeedError> {
    let skus: Vec<&str> = stock.iter().map(|(s, _)| s.as_str()).collect();
    let qty: Vec<i64> = stock.iter().map(|(_, q)| *q).collect();
    let done = sqlx::query(
        "INSERT INTO stock (sku, on_hand)
         SELECT DISTINCT ON (sku) sku, qty FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS s(sku, qty, n)
         ORDER BY sku, n
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(&skus)
    .bind(&qty)
    .execute(conn)
    .await
    .map_err(SeedError::Insert)?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_ignores_blanks() -> Result<(), SeedError> {
        let s: SeedStock = " BOOK-1=10, PEN-2 = 0 ,".parse()?;
        assert_eq!(s.0, vec![("BOOK-1".to_owned(), 10), ("PEN-2".to_owned(), 0)]);
        assert_eq!("".parse::<SeedStock>()?, SeedStock::default());
        Ok(())
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in ["BOOK-1", "=3", "BOOK-1=x", "BOOK-1=-1"] {
            let err = bad.parse::<SeedStock>().expect_err(bad);
            assert!(matches!(&err, SeedError::Parse { entry, .. } if entry == bad), "{bad}: {err}");
        }
    }
}
