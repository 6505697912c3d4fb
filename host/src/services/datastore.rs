//! The datastore as an ABI service: [`LocalDatastore`] behind `abi::Datastore`.

use super::{host_guard, shielded};
use crate::datastore::{DatastoreError, LocalDatastore};
use abi_stable::std_types::{ROption, RStr, RString, RVec};
use labelhost_plugin_api::abi::{self, ErrorCode, PluginError, PluginResult};
use serde_json::{Map, Value};
use std::{path::Path, sync::Arc};

/// The shared datastore, as plugins see it.
pub struct DatastoreService(pub Arc<LocalDatastore>);

impl From<DatastoreError> for PluginError {
    fn from(e: DatastoreError) -> Self {
        let code = match &e {
            DatastoreError::NotFound(_) => ErrorCode::NOT_FOUND,
            DatastoreError::InvalidInput(_) => ErrorCode::INVALID_INPUT,
            DatastoreError::Io(_) | DatastoreError::Full(_) | DatastoreError::Upstream(_) => {
                ErrorCode::SERVER_ERROR
            }
        };
        PluginError::new(code, e.to_string())
    }
}

fn object(text: RStr<'_>) -> Result<Map<String, Value>, PluginError> {
    match serde_json::from_str(text.as_str()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(PluginError::new(
            ErrorCode::INVALID_INPUT,
            "info must be a JSON object",
        )),
        Err(e) => Err(PluginError::new(
            ErrorCode::INVALID_INPUT,
            format!("info: {e}"),
        )),
    }
}

fn text(v: impl serde::Serialize) -> RString {
    serde_json::to_string(&v)
        .unwrap_or_else(|_| "null".into())
        .into()
}

fn ids(v: Vec<String>) -> RVec<RString> {
    v.into_iter().map(RString::from).collect()
}

fn path(p: std::path::PathBuf) -> RString {
    p.to_string_lossy().as_ref().into()
}

impl abi::Datastore for DatastoreService {
    fn name(&self) -> RString {
        shielded("name", RString::new, || self.0.name().into())
    }
    fn set_name(&self, name: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.set_name(name.as_str())?))
    }
    fn description(&self) -> RString {
        shielded("description", RString::new, || self.0.description().into())
    }
    fn set_description(&self, d: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.set_description(d.as_str())?))
    }
    fn datalist(&self) -> PluginResult<RString> {
        host_guard(|| Ok(text(self.0.datalist())))
    }
    fn list_images(&self) -> RVec<RString> {
        shielded("list_images", RVec::new, || ids(self.0.list_images()))
    }
    fn get_image(&self, id: RStr<'_>) -> PluginResult<RVec<u8>> {
        host_guard(|| Ok(self.0.get_image(id.as_str())?.into()))
    }
    fn get_image_uri(&self, id: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| Ok(path(self.0.get_image_uri(id.as_str())?)))
    }
    fn get_image_info(&self, id: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| Ok(text(self.0.get_image_info(id.as_str())?)))
    }
    fn get_label(&self, id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RVec<u8>> {
        host_guard(|| Ok(self.0.get_label(id.as_str(), tag.as_str())?.into()))
    }
    fn get_label_uri(&self, id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| Ok(path(self.0.get_label_uri(id.as_str(), tag.as_str())?)))
    }
    fn get_label_info(&self, id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| Ok(text(self.0.get_label_info(id.as_str(), tag.as_str())?)))
    }
    fn get_label_by_image_id(&self, id: RStr<'_>, tag: RStr<'_>) -> ROption<RString> {
        shielded(
            "get_label_by_image_id",
            || ROption::RNone,
            || {
                self.0
                    .get_label_by_image_id(id.as_str(), tag.as_str())
                    .map(RString::from)
                    .into()
            },
        )
    }
    fn get_labels_by_image_id(&self, id: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| Ok(text(self.0.get_labels_by_image_id(id.as_str())?)))
    }
    fn get_labeled_images(&self) -> RVec<RString> {
        shielded("get_labeled_images", RVec::new, || {
            ids(self.0.get_labeled_images())
        })
    }
    fn get_unlabeled_images(&self) -> RVec<RString> {
        shielded("get_unlabeled_images", RVec::new, || {
            ids(self.0.get_unlabeled_images())
        })
    }
    fn add_image(&self, id: RStr<'_>, file: RStr<'_>, info: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| {
            let info = object(info)?;
            Ok(self
                .0
                .add_image(id.as_str(), Path::new(file.as_str()), info)?
                .into())
        })
    }
    fn remove_image(&self, id: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.remove_image(id.as_str())?))
    }
    fn save_label(
        &self,
        id: RStr<'_>,
        file: RStr<'_>,
        tag: RStr<'_>,
        info: RStr<'_>,
    ) -> PluginResult<RString> {
        host_guard(|| {
            let info = object(info)?;
            let label =
                self.0
                    .save_label(id.as_str(), Path::new(file.as_str()), tag.as_str(), info)?;
            Ok(label.into())
        })
    }
    fn remove_label(&self, id: RStr<'_>, tag: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.remove_label(id.as_str(), tag.as_str())?))
    }
    fn remove_label_by_tag(&self, tag: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.remove_label_by_tag(tag.as_str())?))
    }
    fn update_image_info(&self, id: RStr<'_>, info: RStr<'_>) -> PluginResult<()> {
        host_guard(|| Ok(self.0.update_image_info(id.as_str(), object(info)?)?))
    }
    fn update_label_info(&self, id: RStr<'_>, tag: RStr<'_>, info: RStr<'_>) -> PluginResult<()> {
        host_guard(|| {
            Ok(self
                .0
                .update_label_info(id.as_str(), tag.as_str(), object(info)?)?)
        })
    }
    fn status(&self) -> RString {
        shielded("status", RString::new, || text(self.0.status()))
    }
    fn refresh(&self) -> PluginResult<()> {
        host_guard(|| Ok(self.0.refresh()?))
    }
    fn json(&self) -> RString {
        shielded("json", RString::new, || text(self.0.json()))
    }
    fn get_dataset_archive(&self, limit_cases: u32) -> PluginResult<RString> {
        host_guard(|| {
            let limit = (limit_cases > 0).then_some(limit_cases as usize);
            Ok(path(self.0.dataset_archive(limit)?))
        })
    }
}
