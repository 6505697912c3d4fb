//! Image info across hosts over a DICOMweb server: each host's cache keeps its own index,
//! so what a host merges into a remote image's info (a client's `PUT /datastore/image/info`,
//! an app's scores) also goes to the store, and every other host merges it into its own
//! copy at its next round. (Over a shared folder the index itself is shared.)

use super::Cluster;
use crate::Result;
use serde_json::{Map, Value};

impl Cluster {
    /// Adds `info` to what the store holds for `image` (keys merged, newest wins).
    pub async fn share_info(&self, image: &str, info: &Map<String, Value>) -> Result<()> {
        let info = Value::Object(info.clone());
        self.execute("sharing image info", "INSERT INTO labelhost_image_info (image, info, host) VALUES ($1, $2, $3) \
                 ON CONFLICT (image) DO UPDATE SET info = labelhost_image_info.info || EXCLUDED.info, \
                 host = EXCLUDED.host, seq = DEFAULT",
                &[&image, &info, &self.host]).await?;
        Ok(())
    }

    /// The images whose shared info another host changed after `after` (a `seq`), with
    /// that info, and the last `seq` seen.
    pub(super) async fn shared_info_after(
        &self,
        after: i64,
    ) -> Result<(i64, Vec<(String, Map<String, Value>)>)> {
        let rows = self.query("reading shared image info", "SELECT image, info, seq, host FROM labelhost_image_info WHERE seq > $1 ORDER BY seq",
                &[&after]).await?;
        let mut last = after;
        let mut out = Vec::new();
        for row in rows {
            last = last.max(row.get::<_, i64>(2));
            if row.get::<_, String>(3) == self.host {
                continue;
            }
            if let Value::Object(info) = row.get::<_, Value>(1) {
                out.push((row.get(0), info));
            }
        }
        Ok((last, out))
    }
}
