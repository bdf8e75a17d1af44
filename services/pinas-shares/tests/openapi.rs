//! The OpenAPI document describes the routes the router serves.

use utoipa::OpenApi;

#[test]
fn openapi_lists_every_route() {
    let doc = serde_json::to_value(pinas_shares::ApiDoc::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (p, methods) in [
        ("/api/shares", &["get", "post"][..]),
        ("/api/shares/{id}", &["get", "put", "delete"][..]),
        ("/api/users", &["get", "post"][..]),
        ("/api/users/{name}", &["get", "put", "delete"][..]),
        ("/api/groups", &["get", "post"][..]),
        ("/api/groups/{name}", &["get", "put", "delete"][..]),
    ] {
        for m in methods {
            assert!(paths[p][m].is_object(), "{m} {p} missing");
        }
    }
    let share = &doc["components"]["schemas"]["Share"]["properties"];
    for f in [
        "id",
        "name",
        "path",
        "description",
        "read_only",
        "guest_ok",
        "valid_users",
        "smb",
        "nfs",
        "nfs_clients",
    ] {
        assert!(share[f].is_object(), "Share.{f}");
    }
    let new_user = &doc["components"]["schemas"]["NewUser"]["properties"];
    assert!(new_user["password"].is_object());
    let user = &doc["components"]["schemas"]["User"]["properties"];
    assert!(
        user.get("password").is_none(),
        "User never carries a password"
    );
}
