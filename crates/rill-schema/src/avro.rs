//! Avro serdes over a schema registry, and Avro shown as JSON.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use bytes::Bytes;
use parking_lot::RwLock;
use rill_streams::{Serde, SerdeError};

use crate::compatibility;
use crate::error::RegistryError;
use crate::registry::SchemaRegistry;
use crate::wire;

fn avro_error(reason: impl ToString) -> SerdeError {
    SerdeError {
        format: "avro",
        reason: reason.to_string(),
    }
}

struct CacheInner {
    registry: Arc<dyn SchemaRegistry>,
    ids: RwLock<HashMap<(String, Arc<str>), i32>>,
    schemas: RwLock<HashMap<i32, Arc<Schema>>>,
}

/// A registry with its answers cached: the id of each (subject, schema) registered, the
/// parsed schema of each id read. Ids never change their schema, so nothing expires. Cheap to
/// clone; every serde of a process shares one.
#[derive(Clone)]
pub struct SchemaCache {
    inner: Arc<CacheInner>,
}

impl SchemaCache {
    /// Caches the answers of `registry`.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        SchemaCache {
            inner: Arc::new(CacheInner {
                registry,
                ids: RwLock::new(HashMap::new()),
                schemas: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The registry behind the cache.
    pub fn registry(&self) -> &Arc<dyn SchemaRegistry> {
        &self.inner.registry
    }

    /// The id of `schema` under `subject`, registering it the first time.
    pub fn id(&self, subject: &str, schema: &Arc<str>) -> Result<i32, RegistryError> {
        let key = (subject.to_string(), schema.clone());
        if let Some(id) = self.inner.ids.read().get(&key) {
            return Ok(*id);
        }
        let id = self.inner.registry.register(subject, schema)?;
        self.inner.ids.write().insert(key, id);
        Ok(id)
    }

    /// The schema with this id.
    pub fn schema(&self, id: i32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self.inner.schemas.read().get(&id) {
            return Ok(schema.clone());
        }
        let text = self.inner.registry.schema_text(id)?;
        let (schema, _) = compatibility::parse(&text)?;
        let schema = Arc::new(schema);
        self.inner.schemas.write().insert(id, schema.clone());
        Ok(schema)
    }

    /// A framed Avro value as JSON, for people (the topic proxy, `rill tail`): records as
    /// objects, enums as their symbols, unions as their branch's value. `None` when the bytes
    /// are not in Confluent's wire format (JSON values, plain strings).
    pub fn to_json(&self, bytes: &[u8]) -> Option<Result<serde_json::Value, SerdeError>> {
        let (id, body) = wire::split(bytes).ok()?;
        Some(self.decode_json(id, body))
    }

    fn decode_json(&self, id: i32, mut body: &[u8]) -> Result<serde_json::Value, SerdeError> {
        let schema = self.schema(id).map_err(avro_error)?;
        let value = GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .map_err(avro_error)?;
        serde_json::Value::try_from(value).map_err(avro_error)
    }
}

/// Values of `T` as Avro in Confluent's wire format, with the schema registered under the
/// topic's subject (`<topic>-value`, or `<topic>-key` for a key serde: Confluent's
/// `TopicNameStrategy`). Writing registers the schema once per topic (cached); reading takes
/// the writer's schema by the record's id and resolves it to this serde's schema, so records
/// written with an older or newer compatible schema read as `T` (schema evolution).
///
/// `T`'s serde form must match the schema: field names as the schema's, unit-variant enums
/// as Avro enums with the same symbols, `Option` as a union with null.
///
/// ```no_run
/// # fn demo(log: std::sync::Arc<dyn rill_log::Log>) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use rill_schema::{AvroSerde, LogSchemaRegistry, SchemaCache};
/// use rill_streams::Serde;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Greeting { text: String }
/// let cache = SchemaCache::new(Arc::new(LogSchemaRegistry::open(log.as_ref())?));
/// let schema = r#"{"type":"record","name":"Greeting","fields":[{"name":"text","type":"string"}]}"#;
/// let serde = AvroSerde::<Greeting>::new(cache, schema)?;
/// let bytes = serde.serialize("greetings", &Greeting { text: "hi".into() })?;
/// assert_eq!(bytes[0], 0); // magic byte, then the schema id
/// # Ok(()) }
/// ```
pub struct AvroSerde<T> {
    cache: SchemaCache,
    schema: Arc<Schema>,
    text: Arc<str>,
    suffix: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> AvroSerde<T> {
    /// A serde of values with the Avro `schema` (JSON text).
    pub fn new(cache: SchemaCache, schema: &str) -> Result<Self, RegistryError> {
        let (parsed, text) = compatibility::parse(schema)?;
        Ok(AvroSerde {
            cache,
            schema: Arc::new(parsed),
            text: Arc::from(text),
            suffix: "-value",
            _type: PhantomData,
        })
    }

    /// The same, for keys (subject `<topic>-key`).
    pub fn for_keys(mut self) -> Self {
        self.suffix = "-key";
        self
    }

    /// The schema, as registered.
    pub fn schema_text(&self) -> &str {
        &self.text
    }
}

impl<T> Serde<T> for AvroSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, topic: &str, value: &T) -> Result<Bytes, SerdeError> {
        let subject = format!("{topic}{}", self.suffix);
        let id = self.cache.id(&subject, &self.text).map_err(avro_error)?;
        let mut out = wire::header(id);
        GenericDatumWriter::builder(&self.schema)
            .build()
            .and_then(|writer| writer.write_ser(&mut out, value))
            .map_err(avro_error)?;
        Ok(Bytes::from(out))
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        let (id, mut body) = wire::split(bytes).map_err(avro_error)?;
        let writer = self.cache.schema(id).map_err(avro_error)?;
        let reader = GenericDatumReader::builder(&writer)
            .reader_schema(&self.schema)
            .build()
            .map_err(avro_error)?;
        let value = reader.read_value(&mut body).map_err(avro_error)?;
        apache_avro::from_value::<T>(&value).map_err(avro_error)
    }
}
