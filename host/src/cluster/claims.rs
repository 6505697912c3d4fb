//! Active-learning claims across hosts: the same rule as one host's (`datastore/claims.rs`:
//! an image served to a client is not served to another while the claim is fresh;
//! anonymous requests are all different clients), decided by one statement in the store so
//! two hosts asked at once cannot both win.

use super::Cluster;
use crate::Result;

/// Seconds since the epoch as the store keeps them.
fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Cluster {
    /// Images another client than `client` holds a fresh claim on at `now` (claims stay
    /// fresh `fresh` seconds; 0: none are).
    pub async fn claimed_by_others(
        &self,
        client: Option<&str>,
        now: u64,
        fresh: u64,
    ) -> Result<Vec<String>> {
        if fresh == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .query(
                "reading claims",
                "SELECT image FROM labelhost_claims WHERE ts > $1 AND NOT done \
                 AND (client IS NULL OR $2::text IS NULL OR client <> $2) ORDER BY image",
                &[&secs(now.saturating_sub(fresh)), &client],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Claims `image` for `client` through `strategy` at `now` unless another client's
    /// claim on it is still fresh; answers whether this one won.
    pub async fn claim(
        &self,
        image: &str,
        strategy: &str,
        client: Option<&str>,
        now: u64,
        fresh: u64,
    ) -> Result<bool> {
        let won = self
            .query(
                "claiming an image",
                "INSERT INTO labelhost_claims (image, client, strategy, ts) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (image) DO UPDATE SET client = EXCLUDED.client, \
                 strategy = EXCLUDED.strategy, ts = EXCLUDED.ts \
                 WHERE NOT labelhost_claims.done \
                 AND (labelhost_claims.ts <= $5 OR labelhost_claims.client = EXCLUDED.client) \
                 RETURNING image",
                &[
                    &image,
                    &client,
                    &strategy,
                    &secs(now),
                    &secs(now.saturating_sub(fresh)),
                ],
            )
            .await?;
        Ok(!won.is_empty())
    }

    /// Marks the claim on `image` done (its final label was saved): it is no longer listed
    /// to strategies, which skip labelled images themselves, so next-sample requests carry
    /// only the claims in progress; and it is never won again — a strategy that read the
    /// index just before the label was saved cannot serve the image to another client.
    pub async fn release(&self, image: &str) -> Result<()> {
        self.execute(
            "closing a claim",
            "UPDATE labelhost_claims SET done = true WHERE image = $1",
            &[&image],
        )
        .await?;
        Ok(())
    }

    /// Forgets the claim on `image` (its final label was deleted: it may be served again).
    pub async fn reopen(&self, image: &str) -> Result<()> {
        self.execute(
            "reopening an image",
            "DELETE FROM labelhost_claims WHERE image = $1",
            &[&image],
        )
        .await?;
        Ok(())
    }
}
