//! Helpers for the browser tests.
#![allow(dead_code)]

use std::future::Future;

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;

use js_sys::{Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// Runs `work` with the page's `indexedDB` hidden, as a privacy mode or a worker without it
/// would, then puts it back.
pub async fn without_indexed_db<T>(work: impl Future<Output = T>) -> T {
    let global = js_sys::global();
    let key = JsValue::from_str("indexedDB");
    let original = Object::get_own_property_descriptor(&global, &key);
    let hidden = Object::new();
    Reflect::set(&hidden, &"value".into(), &JsValue::NULL).unwrap();
    Reflect::set(&hidden, &"configurable".into(), &JsValue::TRUE).unwrap();
    Object::define_property(&global, &key, &hidden);
    let result = work.await;
    if original.is_undefined() {
        Reflect::delete_property(&global, &key).unwrap();
    } else {
        Object::define_property(&global, &key, original.unchecked_ref());
    }
    result
}

/// A plain connection at `version`, creating `store` if it upgrades, with no `versionchange`
/// handler (like a careless page in another tab).
pub async fn raw_open(name: &str, version: u32, store: &'static str) -> Database {
    Database::open(name)
        .with_version(version)
        .with_on_upgrade_needed(move |_, db| {
            if !db.object_store_names().any(|n| n == store) {
                db.create_object_store(store).build()?;
            }
            Ok(())
        })
        .build()
        .unwrap()
        .await
        .unwrap()
}
