//! The JavaScript API of the npm package, a front end on the engine: the `QuantDB` class,
//! its TypeScript declarations (`types.d.ts`), and the conversion of answers to JS objects.

mod bindings;
mod objects;

pub use bindings::QuantDB;
