import { Dict } from "@partd/core"
import { suite } from "@partd/test/StoreSuite"

suite("Dict", Dict.layer)
