import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { File } from "@partd/backend-file"
import { Buffer, Dict } from "@partd/core"
import { suite } from "@partd/test/StoreSuite"

const explicitDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-file-suite-"))

suite("File (temp dir)", File.layer(), { propertyRuns: 15 })
suite("File (explicit dir)", File.layer({ path: nodePath.join(explicitDir, "store"), dropOnClose: true }), {
  propertyRuns: 15
})
suite(
  "Buffer(Dict, File) with a 1 KiB bound",
  Buffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 1024 }),
  { propertyRuns: 10 }
)
