//! Avro serdes over a schema registry, and Avro shown as JSON.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    schemas: RwLock<HashMap<i32, &'static Schema>>,
    interned: RwLock<HashMap<Arc<str>, &'static Schema>>,
}

/// A registry with its answers cached: the id of each (subject, schema) registered, the
/// parsed schema of each id read. Ids never change their schema, so nothing expires. Cheap to
/// clone; every serde of a process shares one.
///
/// Parsed schemas live as long as the process (leaked, once per distinct schema of a cache): the
/// serdes keep readers and writers prepared over them, which borrow them, instead of
/// preparing a schema for every record.
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
                interned: RwLock::new(HashMap::new()),
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
        // The id names this schema for good: records written with it read without asking the
        // registry again (some are read from async code, which must not block on it).
        let (parsed, _) = self.intern(schema)?;
        self.inner.schemas.write().entry(id).or_insert(parsed);
        self.inner.ids.write().insert(key, id);
        Ok(id)
    }

    /// The schema with this id.
    pub fn schema(&self, id: i32) -> Result<&'static Schema, RegistryError> {
        if let Some(schema) = self.inner.schemas.read().get(&id) {
            return Ok(schema);
        }
        let text = self.inner.registry.schema_text(id)?;
        let schema = self.intern(&text)?.0;
        self.inner.schemas.write().insert(id, schema);
        Ok(schema)
    }

    /// The parsed schema of `text`, once per distinct schema, and its kept text.
    fn intern(&self, text: &str) -> Result<(&'static Schema, Arc<str>), RegistryError> {
        let (parsed, canonical) = compatibility::parse(text)?;
        let canonical: Arc<str> = Arc::from(canonical);
        if let Some(schema) = self.inner.interned.read().get(&canonical) {
            return Ok((schema, canonical));
        }
        let mut interned = self.inner.interned.write();
        let schema = *interned
            .entry(canonical.clone())
            .or_insert_with(|| Box::leak(Box::new(parsed)));
        Ok((schema, canonical))
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
        let value = GenericDatumReader::builder(schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .map_err(avro_error)?;
        serde_json::Value::try_from(value).map_err(avro_error)
    }
}

/// How records written with one schema are read.
enum Reading {
    /// Written with the serde's own schema: deserialized straight from the bytes while that
    /// works. It needs the Rust type's names to be the schema's (apache-avro checks a struct's
    /// name against the record's); `direct` turns false at the first refusal, and reading goes
    /// through a decoded value from then on.
    Same {
        reader: GenericDatumReader<'static>,
        direct: AtomicBool,
    },
    /// Written with another: decoded, resolved to the serde's schema, then deserialized.
    Resolving(GenericDatumReader<'static>),
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
/// Writers and readers are prepared once per schema, not per record. Records written with
/// the serde's own schema deserialize straight from their bytes when the Rust types carry the
/// schema's names (a struct `Order` for the record `Order`); otherwise, and across schema
/// versions, through a decoded Avro value, some times slower.
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
    schema: &'static Schema,
    text: Arc<str>,
    suffix: &'static str,
    writer: GenericDatumWriter<'static>,
    /// The id of the schema per topic written to.
    ids: RwLock<HashMap<String, i32>>,
    /// How to read each writer's schema met.
    readers: RwLock<HashMap<i32, Arc<Reading>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> AvroSerde<T> {
    /// A serde of values with the Avro `schema` (JSON text).
    pub fn new(cache: SchemaCache, schema: &str) -> Result<Self, RegistryError> {
        let (schema, text) = cache.intern(schema)?;
        let writer = GenericDatumWriter::builder(schema)
            .build()
            .map_err(|error| RegistryError::InvalidSchema {
                reason: error.to_string(),
            })?;
        Ok(AvroSerde {
            cache,
            schema,
            text,
            suffix: "-value",
            writer,
            ids: RwLock::new(HashMap::new()),
            readers: RwLock::new(HashMap::new()),
            _type: PhantomData,
        })
    }

    /// The same, for keys (subject `<topic>-key`).
    pub fn for_keys(mut self) -> Self {
        self.suffix = "-key";
        self.ids.write().clear();
        self
    }

    /// The schema, as registered.
    pub fn schema_text(&self) -> &str {
        &self.text
    }

    fn id(&self, topic: &str) -> Result<i32, SerdeError> {
        if let Some(id) = self.ids.read().get(topic) {
            return Ok(*id);
        }
        let subject = format!("{topic}{}", self.suffix);
        let id = self.cache.id(&subject, &self.text).map_err(avro_error)?;
        self.ids.write().insert(topic.to_string(), id);
        Ok(id)
    }

    fn reading(&self, id: i32) -> Result<Arc<Reading>, SerdeError> {
        if let Some(reading) = self.readers.read().get(&id) {
            return Ok(reading.clone());
        }
        let writer = self.cache.schema(id).map_err(avro_error)?;
        // Interned: the same schema is the same allocation.
        let reading = if std::ptr::eq(writer, self.schema) {
            Reading::Same {
                reader: GenericDatumReader::builder(writer)
                    .build()
                    .map_err(avro_error)?,
                direct: AtomicBool::new(true),
            }
        } else {
            Reading::Resolving(
                GenericDatumReader::builder(writer)
                    .reader_schema(self.schema)
                    .build()
                    .map_err(avro_error)?,
            )
        };
        let reading = Arc::new(reading);
        self.readers.write().insert(id, reading.clone());
        Ok(reading)
    }
}

impl<T> Serde<T> for AvroSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, topic: &str, value: &T) -> Result<Bytes, SerdeError> {
        let mut out = wire::header(self.id(topic)?);
        self.writer.write_ser(&mut out, value).map_err(avro_error)?;
        Ok(Bytes::from(out))
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        let (id, mut body) = wire::split(bytes).map_err(avro_error)?;
        let reading = self.reading(id)?;
        let reader = match reading.as_ref() {
            Reading::Same { reader, direct } => {
                if direct.load(Ordering::Relaxed) {
                    let mut direct_body = body;
                    match reader.read_deser(&mut direct_body) {
                        Ok(value) => return Ok(value),
                        Err(error) => {
                            tracing::debug!(%error, id, "reading through decoded values");
                            direct.store(false, Ordering::Relaxed);
                        }
                    }
                }
                reader
            }
            Reading::Resolving(reader) => reader,
        };
        let value = reader.read_value(&mut body).map_err(avro_error)?;
        apache_avro::from_value::<T>(&value).map_err(avro_error)
    }
}
