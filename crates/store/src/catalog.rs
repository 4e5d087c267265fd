//! Reading the metric catalog: every metric id a job's partitions have seen, with the tags of its
//! first event, in id order. [`CatalogWalk`] is the one place the query's rules live (match,
//! tags, cursor, limit, scan budget), so every store only feeds it its entries in id order from
//! [`CatalogWalk::lower_bound`] on. This module must never read or write a table itself.

use std::collections::BTreeMap;

use crate::MetricMatch;

/// Metrics of `job` in id order: those `metric_match` keeps (its literal prefix bounds the scan)
/// and whose tags include every pair of `tags`, strictly after `after`, at most `limit`.
/// `scan_limit` bounds the catalog entries one call examines: past it the page ends with what it
/// found and [`CatalogPage::resume_after`], so a filter that matches nothing stays cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    pub job: String,
    pub metric_match: Option<MetricMatch>,
    pub tags: Vec<(String, String)>,
    pub after: Option<String>,
    pub limit: usize,
    pub scan_limit: usize,
}

/// One metric of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub metric_id: String,
    /// The tags of the metric's first event.
    pub tags: BTreeMap<String, String>,
}

/// What a [`CatalogQuery`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogPage {
    pub entries: Vec<CatalogEntry>,
    /// Set when the scan budget ran out first: every id up to this one was examined; the walk
    /// goes on with `after` set to it.
    pub resume_after: Option<String>,
}

/// The rules of a catalog query over entries fed in id order.
#[derive(Debug)]
pub struct CatalogWalk<'q> {
    q: &'q CatalogQuery,
    left: usize,
    page: CatalogPage,
}

impl<'q> CatalogWalk<'q> {
    pub fn new(q: &'q CatalogQuery) -> Self {
        Self {
            q,
            left: q.scan_limit,
            page: CatalogPage::default(),
        }
    }

    /// The first id the store must feed: the match's literal prefix (an id before it cannot
    /// match), or the cursor when it is further on (then that id itself is skipped by
    /// [`Self::offer`]).
    pub fn lower_bound(&self) -> &'q str {
        let prefix = self.prefix();
        match &self.q.after {
            Some(after) if after.as_str() > prefix => after,
            _ => prefix,
        }
    }

    /// The literal prefix every matching id starts with (empty: any).
    pub fn prefix(&self) -> &'q str {
        self.q
            .metric_match
            .as_ref()
            .map_or("", MetricMatch::literal_prefix)
    }

    /// Whether the walk needs nothing more (the limit is zero).
    pub fn done_before_start(&self) -> bool {
        self.q.limit == 0
    }

    /// The next entry in id order; false when the walk is over and the store must stop feeding.
    pub fn offer(&mut self, metric_id: String, tags: BTreeMap<String, String>) -> bool {
        if !metric_id.starts_with(self.prefix()) {
            // Past the prefix: no later id can match.
            return false;
        }
        if self
            .q
            .after
            .as_deref()
            .is_some_and(|after| metric_id.as_str() <= after)
        {
            return true;
        }
        let wanted = self
            .q
            .metric_match
            .as_ref()
            .is_none_or(|m| m.matches(&metric_id))
            && self.q.tags.iter().all(|(k, v)| tags.get(k) == Some(v));
        self.left = self.left.saturating_sub(1);
        if wanted {
            self.page.entries.push(CatalogEntry {
                metric_id: metric_id.clone(),
                tags,
            });
            if self.page.entries.len() >= self.q.limit {
                return false;
            }
        }
        if self.left == 0 {
            self.page.resume_after = Some(metric_id);
            return false;
        }
        true
    }

    pub fn finish(self) -> CatalogPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(
        m: Option<MetricMatch>,
        after: Option<&str>,
        limit: usize,
        scan: usize,
    ) -> CatalogQuery {
        CatalogQuery {
            job: "j".into(),
            metric_match: m,
            tags: Vec::new(),
            after: after.map(str::to_string),
            limit,
            scan_limit: scan,
        }
    }

    fn walk(q: &CatalogQuery, ids: &[&str]) -> CatalogPage {
        let mut w = CatalogWalk::new(q);
        let bound = w.lower_bound();
        for id in ids.iter().filter(|id| **id >= bound) {
            if !w.offer(id.to_string(), BTreeMap::new()) {
                break;
            }
        }
        w.finish()
    }

    fn ids(p: &CatalogPage) -> Vec<&str> {
        p.entries.iter().map(|e| e.metric_id.as_str()).collect()
    }

    const IDS: &[&str] = &["a.1", "cpu.a", "cpu.b", "cpu.c", "mem.a", "zz"];

    #[test]
    fn a_glob_reads_from_its_prefix_and_stops_past_it() {
        let q = query(Some(MetricMatch::Glob("cpu.?".into())), None, 10, 100);
        assert_eq!(CatalogWalk::new(&q).lower_bound(), "cpu.");
        let p = walk(&q, IDS);
        assert_eq!(ids(&p), ["cpu.a", "cpu.b", "cpu.c"]);
        assert_eq!(p.resume_after, None);
    }

    #[test]
    fn the_cursor_is_exclusive_and_the_budget_says_where_to_resume() {
        let q = query(None, Some("cpu.a"), 10, 2);
        let p = walk(&q, IDS);
        assert_eq!(ids(&p), ["cpu.b", "cpu.c"]);
        assert_eq!(p.resume_after.as_deref(), Some("cpu.c"));
        let q = query(None, p.resume_after.as_deref(), 10, 100);
        assert_eq!(ids(&walk(&q, IDS)), ["mem.a", "zz"]);
    }

    #[test]
    fn a_filter_matching_nothing_costs_one_budget() {
        let q = query(Some(MetricMatch::Glob("*.z".into())), None, 10, 3);
        let p = walk(&q, IDS);
        assert!(p.entries.is_empty());
        assert_eq!(p.resume_after.as_deref(), Some("cpu.b"));
    }
}
