//! The role each route needs: MONAI Label's `RBAC(role)` per route (its route table), plus
//! labelhost's own routes. A route not listed needs admin (closed by default).

use super::Role;
use axum::http::Method;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (health, the auth handshake, the API description).
    Public,
    /// Any valid token (`/auth/token/valid`).
    Bearer,
    /// A token holding this role or a stronger one.
    Role(Role),
    /// Loading, reloading or retiring apps (native code): admin, and without auth only
    /// when the server listens on loopback alone.
    ManageApps,
}

/// What `method` on the matched route template `route` needs.
pub fn required(method: &Method, route: Option<&str>) -> Need {
    use Role::{Admin, Annotator, User};
    let Some(route) = route else {
        return Need::Role(Admin);
    };
    let get = method == Method::GET || method == Method::HEAD;
    let (put, delete) = (method == Method::PUT, method == Method::DELETE);
    let role = match route {
        "/health" | "/openapi.json" | "/docs" | "/auth/" | "/auth" | "/auth/token" => {
            return Need::Public
        }
        // The dashboard's page holds no data; what it shows comes from the routes below.
        "/ui" | "/ui/" | "/ui/app.js" | "/ui/style.css" => return Need::Public,
        "/ui/slice" | "/status" => User,
        "/proxy/dicom/{*path}" if get => User,
        "/proxy/dicom/{*path}" => Annotator,
        "/auth/token/valid" => return Need::Bearer,
        "/apps" if get => User,
        "/apps" | "/apps/{name}/reload" | "/apps/{name}" => return Need::ManageApps,
        "/info/" | "/info" => User,
        "/infer/{model}" | "/activelearning/{strategy}" => User,
        "/session/" | "/session" | "/session/{id}" => User,
        "/train/" | "/train" | "/batch/infer" if get => User,
        "/train/" | "/train" | "/train/{model}" | "/batch/infer" | "/batch/infer/{model}" => Admin,
        "/scoring/" | "/scoring" if get => User,
        "/scoring/" | "/scoring" | "/scoring/{method}" => Annotator,
        "/datastore/" | "/datastore" | "/datastore/image" if get => User,
        "/datastore/" | "/datastore" | "/datastore/image" if put => Annotator,
        "/datastore/label" if get => User,
        "/datastore/label" if put => Annotator,
        "/datastore/" | "/datastore" | "/datastore/image" | "/datastore/label" if delete => Admin,
        "/datastore/image/info" | "/datastore/label/info" if get => User,
        "/datastore/image/info" | "/datastore/label/info" | "/datastore/updatelabelinfo" if put => {
            Annotator
        }
        "/datastore/dataset" => Annotator,
        "/model/info/{model}" | "/model/{model}" => Admin,
        "/logs/" | "/logs" | "/logs/gpu" | "/metrics" => Admin,
        _ => Admin,
    };
    Need::Role(role)
}
