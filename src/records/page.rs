//! Keyset pagination shared by every collection: pages are ordered by
//! `ref_id` (a ULID, so roughly by creation time) and continue after the
//! last ref of the previous page. A row inserted meanwhile never shifts a
//! page (no OFFSET), so no row is skipped or repeated.

/// The most rows one page may hold.
pub const MAX_LIMIT: u32 = 200;
/// Rows per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;

const CURSOR_VERSION: &str = "v1:";

/// Where a page starts: after this ref (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub after: ulid::Ulid,
}

impl Cursor {
    /// The opaque form handed to clients. Clients must not build cursors:
    /// the encoding may change (the version prefix lets it).
    pub fn encode(&self) -> String {
        hex::encode(format!("{CURSOR_VERSION}{}", self.after))
    }

    pub fn decode(cursor: &str) -> Option<Cursor> {
        let bytes = hex::decode(cursor).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let after = text.strip_prefix(CURSOR_VERSION)?.parse().ok()?;
        Some(Cursor { after })
    }
}

/// One page of records and the cursor of the next one, if any.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in ref order: the
    /// extra row only says that there is a next page.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, ref_of: impl Fn(&T) -> ulid::Ulid) -> Self {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor {
                after: ref_of(last),
            })
        } else {
            None
        };
        Page { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            after: ulid::Ulid::generate(),
        };
        let encoded = cursor.encode();
        assert!(!encoded.contains(&cursor.after.to_string()), "opaque");
        assert_eq!(Cursor::decode(&encoded), Some(cursor));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("v2:01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_extra_row_means_a_next_page() {
        let refs: Vec<ulid::Ulid> = (0..3).map(|_| ulid::Ulid::generate()).collect();
        let page = Page::from_rows(refs.clone(), 2, |r| *r);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next.map(|c| c.after), Some(refs[1]));
        let last = Page::from_rows(refs, 3, |r| *r);
        assert!(last.next.is_none());
    }
}
