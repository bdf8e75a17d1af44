//! The OpenAPI document describes the routes the router serves.

use utoipa::OpenApi;

#[test]
fn openapi_lists_every_route_with_its_parameters() {
    let doc = serde_json::to_value(pinas_storage::ApiDoc::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (p, m) in [
        ("/api/storage/disks", "get"),
        ("/api/storage/mounts", "get"),
        ("/api/storage/mount", "post"),
        ("/api/storage/unmount", "post"),
        ("/api/storage/format", "post"),
        ("/api/storage/folders", "get"),
    ] {
        assert!(paths[p][m].is_object(), "{m} {p} missing");
    }
    let params = &paths["/api/storage/folders"]["get"]["parameters"];
    assert_eq!(params[0]["name"], "path");
    assert_eq!(params[0]["in"], "query");
    let disk = &doc["components"]["schemas"]["Disk"]["properties"];
    for f in [
        "name",
        "path",
        "model",
        "serial",
        "size_bytes",
        "transport",
        "rotational",
        "removable",
        "system",
        "filesystem",
        "partitions",
    ] {
        assert!(disk[f].is_object(), "Disk.{f}");
    }
    assert!(
        disk.get("mounted").is_none() && disk.get("held").is_none(),
        "internal fields stay out"
    );
}
