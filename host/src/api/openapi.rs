//! The OpenAPI description, generated from the handlers' `#[utoipa::path]` attributes, and
//! a docs page rendering it (`/openapi.json`, `/docs`).

use super::{
    activelearning, apps, auth, datastore, infer, info, jobs, logs, model, sessions, status,
};
use axum::{response::Html, Json};
use utoipa::OpenApi;

/// Every documented route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "labelhost",
        description = "MONAI Label's REST API plus app management, served by labelhost"
    ),
    paths(
        super::health,
        info::info,
        apps::list,
        apps::load,
        apps::reload,
        apps::retire,
        infer::infer,
        activelearning::next_sample,
        jobs::train_start,
        jobs::train_status,
        jobs::train_stop,
        jobs::train_all,
        jobs::scoring_start,
        jobs::scoring_status,
        jobs::scoring_stop,
        jobs::scoring_all,
        jobs::batch_start,
        jobs::batch_status,
        jobs::batch_stop,
        datastore::images::list,
        datastore::images::upload,
        datastore::images::remove,
        datastore::images::download,
        datastore::images::exists,
        datastore::images::info,
        datastore::images::update_info,
        datastore::labels::save,
        datastore::labels::remove,
        datastore::labels::exists,
        datastore::labels::download,
        datastore::labels::info,
        datastore::labels::update_info,
        datastore::labels::update_info_deprecated,
        datastore::dataset,
        sessions::create,
        sessions::get,
        sessions::remove,
        model::download,
        model::info,
        model::immutable,
        logs::tail,
        logs::gpu,
        auth::status,
        auth::token,
        auth::valid,
        status::status,
    )
)]
pub(super) struct ApiDoc;

/// `GET /openapi.json`
pub(super) async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: ReDoc over `/openapi.json` (its script comes from a CDN, as MONAI Label's).
pub(super) async fn docs() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><title>labelhost API</title><meta charset=\"utf-8\"></head>\
         <body><redoc spec-url=\"/openapi.json\"></redoc>\
         <script src=\"https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js\"></script>\
         </body></html>",
    )
}
