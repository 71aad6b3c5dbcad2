/**
 * Arrow: Apache Arrow tables, the JS counterpart of partd's Pandas
 * encodings. Append record batches (or tables); `get` returns one table
 * holding every batch appended to the key, in order.
 *
 * Each appended table is one frame in the Arrow IPC stream format (schema
 * message, record batches, end-of-stream), which any Arrow implementation
 * reads — pyarrow's `pa.ipc.open_stream` included. A typed store's
 * `stream` yields the key's record batches in append order, one frame at a
 * time, so a key larger than memory can be processed batch by batch. Tables appended to one
 * key must share a schema; a key whose frames disagree fails on `get` with
 * a `Decode` CodecError.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"
import { RecordBatch, Table, tableFromIPC, tableToIPC } from "apache-arrow"

/** Field names, types and nullability: what batches of one table must share. */
const schemaShape = (table: Table): string =>
  table.schema.fields.map((f) => `${JSON.stringify(f.name)}:${String(f.type)}:${f.nullable}`).join(",")

/**
 * The Arrow codec: append tables or record batches, get one table.
 *
 * @since 0.1.0
 * @category codecs
 */
export const codec: Encode.Codec<Table | RecordBatch, Table, RecordBatch> = Encode.make<
  Table | RecordBatch,
  Table,
  RecordBatch
>({
  name: "arrow",
  // A typed store's stream yields record batches, frame by frame.
  items: (value) => (value instanceof RecordBatch ? [value] : value.batches),
  encode: (value: Table | RecordBatch) => {
    if (value instanceof RecordBatch) return tableToIPC(new Table(value), "stream")
    if (value instanceof Table) return tableToIPC(value, "stream")
    throw new TypeError("expected an Arrow Table or RecordBatch")
  },
  decode: (bytes) => tableFromIPC(bytes),
  join: (tables) => {
    if (tables.length === 1) return tables[0] as Table
    const first = tables[0] as Table
    const shape = schemaShape(first)
    for (const table of tables) {
      if (schemaShape(table as Table) !== shape) {
        throw new TypeError("the tables appended to this key do not share one schema")
      }
    }
    // concat, not `new Table(schema, batches)`: each frame's dictionary columns get their own dictionary ids.
    return first.concat(...(tables.slice(1) as Array<Table>))
  },
  empty: () => new Table()
})
