/**
 * Across machines: a server that lets in only its own workers, over real TCP
 * on 127.0.0.1 with certificates made for the test (test/src/Certificates):
 *
 * - the conformance suite through an authenticated TLS client;
 * - a wrong or missing token is `Denied` and nothing of its requests is
 *   applied, while another client is served throughout, and the server
 *   counts the refusals;
 * - a plain client against a TLS server, a TLS client against a plain
 *   server, and a client that trusts another CA fail at once with a typed
 *   error; mutual TLS lets in only clients with a certificate of its CA;
 * - a non-loopback address without a token is refused at startup (in
 *   process and as `partd-server`), `insecure` opts out with a warning;
 * - `partd-server --token-file` / `PARTD_TOKEN` with `--tls-*`, and
 *   `Client.layerConfig` reading `PARTD_TOKEN`;
 * - the token never appears in logs (debug level included) or errors.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { inspect } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Client, Dict, Server, Store, Buffer as StoreBuffer } from "@partd/core"
import * as Certificates from "@partd/test/Certificates"
import * as Child from "@partd/test/Child"
import { suite } from "@partd/test/StoreSuite"
import { Cause, ConfigProvider, Context, Effect, Exit, Layer, Logger, Redacted, References, Scope } from "effect"

const certs = Certificates.make()
const secret = "s3cret-token-that-must-never-leak-4f9c2a"
const token = Redacted.make(secret)
const serverMain = nodePath.resolve(import.meta.dirname, "../../packages/backend-file/src/partd-server.ts")
const bytes = (s: string) => new TextEncoder().encode(s)

/** Every log line, debug included, with its cause, as text. */
const captured: Array<string> = []
const capture = Logger.make(({ message, cause }) => {
  captured.push(`${inspect(message, { depth: 8 })} ${Cause.pretty(cause)}`)
})
const logEverything = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provideService(References.CurrentLoggers, new Set([capture])),
    Effect.provideService(References.MinimumLogLevel, "All")
  )

const serverTls = { key: certs.serverKey, cert: certs.serverCert }

/** A server over a fresh Dict on 127.0.0.1 in the test's scope; its `Info`. */
const startServer = (options: Omit<Server.Options, "address"> & { readonly address?: Server.Address }) =>
  Effect.map(
    Layer.build(Server.layer({ address: { port: 0 }, ...options }).pipe(Layer.provide(Layer.fresh(Dict.layer)))),
    (context) => Context.get(context, Server.Server)
  )

/** A client store in a scope of its own, closed with `close`. */
const openClient = (options: Client.Options) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const store = yield* Client.make(options).pipe(Scope.provide(scope))
    return { store, close: Scope.close(scope, Exit.void) }
  })

const failureOf = (exit: Exit.Exit<unknown, Store.StoreError>): Store.StoreError | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

suite(
  "Client→Server(Buffer(Dict, File)) over TLS on 127.0.0.1, with a token",
  Layer.unwrap(
    Effect.sync(() =>
      Layer.unwrap(
        Effect.map(Server.Server, (server) => Client.layer({ address: server.address, token, tls: { ca: certs.ca } }))
      ).pipe(
        Layer.provide(
          Server.layer({ address: { host: "127.0.0.1", port: 0 }, auth: { token }, tls: serverTls }).pipe(
            Layer.provide(StoreBuffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 8 * 1024 * 1024 }))
          )
        )
      )
    )
  ),
  { propertyRuns: 5 }
)

describe("authentication", () => {
  it.live("a wrong or missing token is Denied, nothing of its requests applied; others are served throughout", () =>
    logEverything(
      Effect.gen(function* () {
        const server = yield* startServer({ auth: { token }, tls: serverTls })
        const good = yield* openClient({ address: server.address, token, tls: { ca: certs.ca } })
        yield* good.store.append({ before: bytes("1") })

        const wrong = yield* openClient({
          address: server.address,
          token: Redacted.make(`${secret}-not`),
          tls: { ca: certs.ca }
        })
        const wrongAppend = yield* Effect.exit(wrong.store.append({ intruder: bytes("x"), before: bytes("x") }))
        const wrongDrop = yield* Effect.exit(wrong.store.drop)
        const missing = yield* openClient({ address: server.address, tls: { ca: certs.ca } })
        const missingAppend = yield* Effect.exit(missing.store.append({ intruder: bytes("y") }))
        const missingGet = yield* Effect.exit(missing.store.get(["before"]))

        // The good client's connection was never disturbed.
        yield* good.store.append({ before: bytes("2") })
        const [before, intruder] = yield* good.store.get(["before", "intruder"])
        for (const exit of [wrongAppend, wrongDrop, missingAppend, missingGet]) {
          expect(failureOf(exit)?.reason, String(exit)).toBe("Denied")
        }
        expect(failureOf(wrongAppend)?.message).toContain("token")
        expect(failureOf(missingAppend)?.message).toContain("requires a token")
        expect(new TextDecoder().decode(before)).toBe("12")
        expect(intruder!.byteLength).toBe(0)
        // Two connections with the wrong token, two that left without one: all four counted.
        for (let i = 0; i < 200 && server.refusedConnections() < 4; i++) yield* Effect.sleep(10)
        expect(server.refusedConnections()).toBe(4)
        yield* Effect.all([good.close, wrong.close, missing.close])

        const everything = [...captured, ...[wrongAppend, wrongDrop, missingAppend, missingGet].map(String)].join("\n")
        expect(everything).toContain("refused a connection")
        expect(everything).not.toContain(secret)
      })
    )
  )

  it.live("a raw connection that skips the proof gets Denied and nothing it sent is applied", () =>
    Effect.gen(function* () {
      // Without TLS here: the handshake is the same, and a plain socket is easy to drive by hand.
      const server = yield* startServer({ auth: { token } })
      const { store, close } = yield* openClient({ address: server.address, token })
      const raw = yield* Effect.promise(async () => {
        const net = await import("node:net")
        const Handshake = await import("@partd/core/Handshake")
        const { Wire } = await import("@partd/core")
        return new Promise<Array<string>>((resolve) => {
          const address = server.address as { host: string; port: number }
          const socket = net.createConnection({ host: address.host, port: address.port })
          const parser = Wire.makeParser()
          const tags: Array<string> = []
          socket.on("data", (chunk: Uint8Array) => {
            for (const m of parser.decode(chunk)) tags.push(String((m as { _tag: unknown })._tag))
          })
          socket.on("error", () => {})
          socket.on("close", () => resolve(tags))
          socket.write(Handshake.clientHello())
          socket.write(Wire.encode({ _tag: "Append", id: 0, paths: "sneaky", values: [bytes("z")] }))
        })
      })
      expect(raw).toEqual(["Hello", "Denied"])
      expect((yield* store.get(["sneaky"]))[0]!.byteLength).toBe(0)
      yield* close
    })
  )
})

describe("handshake bounds and a client's token", () => {
  /** A TCP listener on 127.0.0.1 that accepts and never says a word; when each connection opened and closed. */
  const silentListener = Effect.acquireRelease(
    Effect.promise(async () => {
      const net = await import("node:net")
      const connections: Array<{ opened: number; closed?: number }> = []
      const sockets = new Set<import("node:net").Socket>()
      const server = net.createServer((socket) => {
        const seen: { opened: number; closed?: number } = { opened: Date.now() }
        connections.push(seen)
        sockets.add(socket)
        socket.on("error", () => {})
        socket.on("close", () => {
          seen.closed = Date.now()
          sockets.delete(socket)
        })
        // Read what the client sends (its greeting, a TLS hello), answer nothing.
        socket.resume()
      })
      await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve))
      const port = (server.address() as { port: number }).port
      return { server, sockets, connections, address: { host: "127.0.0.1", port } }
    }),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  )

  /** How long a raw connection to `address` that sends nothing stays open before the server closes it. */
  const silentFor = (address: Server.Address) =>
    Effect.promise(async () => {
      const net = await import("node:net")
      const { host, port } = address as { host: string; port: number }
      return new Promise<number>((resolve) => {
        const started = Date.now()
        const socket = net.createConnection({ host, port })
        socket.on("error", () => {})
        socket.on("close", () => resolve(Date.now() - started))
        // Read (the server's greeting) so that its end is seen.
        socket.resume()
      })
    })

  it.live("a server closes a connection that does not finish its handshake within handshakeTimeout, TLS too", () =>
    Effect.gen(function* () {
      const plain = yield* startServer({ auth: { token }, handshakeTimeout: "300 millis" })
      const tls = yield* startServer({ auth: { token }, tls: serverTls, handshakeTimeout: "300 millis" })
      const [plainOpen, tlsOpen] = yield* Effect.all([silentFor(plain.address), silentFor(tls.address)], {
        concurrency: 2
      })
      for (const open of [plainOpen, tlsOpen]) {
        expect(open).toBeGreaterThanOrEqual(250)
        expect(open).toBeLessThan(3000)
      }
      // Within the bound, a client is served as ever.
      const { store, close } = yield* openClient({ address: tls.address, token, tls: { ca: certs.ca } })
      yield* store.append({ k: bytes("in time") })
      yield* close
      for (const handshakeTimeout of [0, Infinity, "-1 millis"] as const) {
        const refused = yield* Effect.exit(startServer({ handshakeTimeout }))
        expect(failureOf(refused)?.reason).toBe("BadValue")
      }
    })
  )

  it.live("a client closes a connection the server never greets, tries again, then fails with Unavailable", () =>
    Effect.gen(function* () {
      const silent = yield* silentListener
      for (const tls of [undefined, { ca: certs.ca }]) {
        silent.connections.length = 0
        const started = Date.now()
        const { store, close } = yield* openClient({
          address: silent.address,
          handshakeTimeout: "200 millis",
          requestTimeout: "1500 millis",
          ...(tls === undefined ? {} : { tls })
        })
        const exit = yield* Effect.exit(store.append({ k: bytes("never sent") }))
        const error = failureOf(exit)
        // Nothing was sent: Unavailable, safe to retry.
        expect(error?.reason, String(exit)).toBe("Unavailable")
        expect(error?.message).toContain("did not greet within 200 ms")
        expect(Date.now() - started).toBeLessThan(5000)
        // The client hung up on each connection about handshakeTimeout after it opened, and tried again.
        expect(silent.connections.length).toBeGreaterThanOrEqual(2)
        const first = silent.connections[0]!
        expect(first.closed).toBeDefined()
        expect(first.closed! - first.opened).toBeLessThan(1000)
        yield* close
      }
      const refused = yield* Effect.exit(openClient({ address: silent.address, handshakeTimeout: 0 }))
      expect(failureOf(refused)?.reason).toBe("BadValue")
    })
  )

  it.live("a client with a token refuses a server that does not ask for one: Denied, nothing of its calls sent", () =>
    Effect.gen(function* () {
      const open = yield* startServer({})
      const withToken = yield* openClient({ address: open.address, token })
      const appended = yield* Effect.exit(withToken.store.append({ leaked: bytes("secret data") }))
      const dropped = yield* Effect.exit(withToken.store.drop)
      for (const exit of [appended, dropped]) {
        expect(failureOf(exit)?.reason, String(exit)).toBe("Denied")
        expect(failureOf(exit)?.message).toContain("does not ask for a token")
      }
      const without = yield* openClient({ address: open.address })
      expect((yield* without.store.get(["leaked"]))[0]!.byteLength).toBe(0)
      expect(String(appended)).not.toContain(secret)
      yield* Effect.all([withToken.close, without.close])
    })
  )
})

describe("before the proof", () => {
  it.live("a connection that sends a large frame instead of its proof is closed at once, holding little", () =>
    Effect.gen(function* () {
      const server = yield* startServer({ auth: { token } })
      const address = server.address as { host: string; port: number }
      const started = Date.now()
      const received = yield* Effect.promise(async () => {
        const net = await import("node:net")
        const Handshake = await import("@partd/core/Handshake")
        return new Promise<number>((resolve) => {
          const socket = net.createConnection({ host: address.host, port: address.port })
          let bytes = 0
          socket.on("data", (chunk: Uint8Array) => {
            bytes += chunk.byteLength
          })
          socket.on("error", () => {})
          socket.on("close", () => resolve(bytes))
          socket.write(Handshake.clientHello())
          // A frame that claims 100 MiB (under the frame limit), and its first MiB.
          const header = new Uint8Array(4)
          new DataView(header.buffer).setUint32(0, 100 * 1024 * 1024, true)
          socket.write(header)
          for (let i = 0; i < 16; i++) socket.write(new Uint8Array(64 * 1024))
        })
      })
      // Closed long before the handshake timeout, and nothing but the greeting was sent back.
      expect(Date.now() - started).toBeLessThan(5000)
      expect(received).toBeLessThan(200)
      const { store, close } = yield* openClient({ address: server.address, token })
      yield* store.append({ k: bytes("ok") })
      yield* close
    })
  )
})

describe("TLS", () => {
  it.live("a plain client against a TLS server, and a TLS client against a plain one, fail at once, typed", () =>
    Effect.gen(function* () {
      const tlsServer = yield* startServer({ auth: { token }, tls: serverTls })
      const plainServer = yield* startServer({ auth: { token } })
      const plain = yield* openClient({ address: tlsServer.address, token })
      const tls = yield* openClient({ address: plainServer.address, token, tls: { ca: certs.ca } })
      const started = Date.now()
      const plainExit = yield* Effect.exit(plain.store.append({ a: bytes("1") }))
      const tlsExit = yield* Effect.exit(tls.store.get(["a"]))
      expect(Date.now() - started).toBeLessThan(5000)
      expect(failureOf(plainExit)).toBeInstanceOf(Store.StoreError)
      expect(failureOf(plainExit)?.reason).toBe("Unavailable")
      expect(failureOf(plainExit)?.message).toMatch(/TLS/)
      expect(failureOf(tlsExit)).toBeInstanceOf(Store.StoreError)
      expect(failureOf(tlsExit)?.reason).toBe("Unavailable")
      expect(String(plainExit) + String(tlsExit)).not.toContain(secret)
      yield* Effect.all([plain.close, tls.close])
    })
  )

  it.live("a client that trusts another CA is refused before anything is sent", () =>
    Effect.gen(function* () {
      const server = yield* startServer({ auth: { token }, tls: serverTls })
      const { store, close } = yield* openClient({ address: server.address, token, tls: { ca: certs.otherCa } })
      const exit = yield* Effect.exit(store.append({ a: bytes("1") }))
      expect(failureOf(exit)?.reason).toBe("Unavailable")
      expect(failureOf(exit)?.message).toContain("certificate")
      yield* close
    })
  )

  it.live("mutual TLS lets in only clients with a certificate signed by its CA", () =>
    Effect.gen(function* () {
      const server = yield* startServer({ tls: { ...serverTls, ca: certs.ca } })
      const withCert = yield* openClient({
        address: server.address,
        tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }
      })
      const without = yield* openClient({ address: server.address, tls: { ca: certs.ca } })
      yield* withCert.store.append({ k: bytes("ok") })
      const refused = yield* Effect.exit(without.store.append({ k: bytes("no") }))
      expect(failureOf(refused)?.reason).toBe("Unavailable")
      expect(new TextDecoder().decode((yield* withCert.store.get(["k"]))[0])).toBe("ok")
      yield* Effect.all([withCert.close, without.close])
    })
  )
})

describe("safe defaults", () => {
  it.live("a non-loopback address without a token is refused at startup; a token or insecure lets it start", () =>
    logEverything(
      Effect.gen(function* () {
        const refused = yield* Effect.exit(startServer({ address: { host: "0.0.0.0", port: 0 } }))
        expect(failureOf(refused)?.reason).toBe("BadValue")
        expect(failureOf(refused)?.message).toContain("without authentication: give a token")
        const withToken = yield* startServer({ address: { host: "0.0.0.0", port: 0 }, auth: { token } })
        expect(withToken.address).toMatchObject({ host: "0.0.0.0" })
        captured.length = 0
        yield* startServer({ address: { host: "0.0.0.0", port: 0 }, insecure: true })
        expect(captured.join("\n")).toContain("without authentication (insecure)")
        // Mutual TLS authenticates clients too.
        yield* startServer({ address: { host: "0.0.0.0", port: 0 }, tls: { ...serverTls, ca: certs.ca } })
        // Loopback needs nothing.
        yield* startServer({ address: { host: "127.0.0.1", port: 0 } })
      })
    )
  )

  it.live("Server.layerConfig takes its token from PARTD_TOKEN: a non-loopback address starts, and asks for it", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(
        Server.layerConfig({ address: { host: "0.0.0.0", port: 0 } }).pipe(Layer.provide(Layer.fresh(Dict.layer)))
      ).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({ PARTD_TOKEN: secret })))
      const { port } = Context.get(context, Server.Server).address as { port: number }
      const good = yield* openClient({ address: { host: "127.0.0.1", port }, token })
      const bad = yield* openClient({ address: { host: "127.0.0.1", port } })
      yield* good.store.append({ k: bytes("v") })
      expect(failureOf(yield* Effect.exit(bad.store.get(["k"])))?.reason).toBe("Denied")
      yield* Effect.all([good.close, bad.close])
    })
  )

  it.live("partd-server refuses 0.0.0.0 without a token in one line, and exits non-zero", () =>
    Effect.gen(function* () {
      const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-expose-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
      const exit = yield* Effect.exit(
        Child.start([serverMain, "--listen", "0.0.0.0:0", "--dir", nodePath.join(base, "d")], /listening on/)
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const printed = String(exit)
      expect(printed).toContain("partd-server: BadValue in Server.layer: refusing to serve tcp://0.0.0.0:0")
      expect(printed).toContain("--token-file")
      expect(printed).not.toContain("    at ")
    })
  )
})

describe("partd-server across machines", () => {
  const serveWith = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
    Effect.gen(function* () {
      const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-remote-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
      const saved = { ...process.env }
      Object.assign(process.env, env)
      const started = yield* Child.start(
        [serverMain, "--dir", nodePath.join(base, "d"), "--store", "file", ...args],
        /listening on (\S+)/
      ).pipe(Effect.ensuring(Effect.sync(() => (process.env = saved))))
      return { ...started, base, address: /listening on (\S+)/.exec(started.output())![1]! }
    })

  it.live("--token-file and --tls-*: the right token works, a wrong one is Denied, the token is never printed", () =>
    Effect.gen(function* () {
      const tokenFile = nodePath.join(certs.dir, "token")
      fs.writeFileSync(tokenFile, `${secret}\n`, { mode: 0o600 })
      const server = yield* serveWith([
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        tokenFile,
        "--tls-cert",
        certs.files.serverCert,
        "--tls-key",
        certs.files.serverKey
      ])
      expect(server.output()).toContain("TLS, token required")
      const good = yield* openClient({ address: server.address, token, tls: { ca: certs.ca } })
      yield* good.store.append({ k: bytes("v") })
      const bad = yield* openClient({ address: server.address, token: Redacted.make("guess"), tls: { ca: certs.ca } })
      const denied = yield* Effect.exit(bad.store.append({ k: bytes("w") }))
      expect(failureOf(denied)?.reason).toBe("Denied")
      expect(new TextDecoder().decode((yield* good.store.get(["k"]))[0])).toBe("v")
      yield* Effect.all([good.close, bad.close])
      server.child.kill("SIGTERM")
      yield* Child.exitOf(server.child)
      expect(server.output()).toContain("partd-server stopped")
      expect(server.output() + String(denied)).not.toContain(secret)
    })
  )

  it.live("PARTD_TOKEN in the environment, and Client.layerConfig reading the same variable", () =>
    Effect.gen(function* () {
      const server = yield* serveWith(["--listen", "127.0.0.1:0"], { PARTD_TOKEN: secret })
      expect(server.output()).toContain("token required")
      const fromEnv = ConfigProvider.fromUnknown({ PARTD_TOKEN: secret })
      const values = yield* Effect.gen(function* () {
        const store = yield* Store.Store
        yield* store.append({ k: bytes("configured") })
        return yield* store.get(["k"])
      }).pipe(
        Effect.provide(Client.layerConfig({ address: server.address })),
        Effect.provideService(ConfigProvider.ConfigProvider, fromEnv)
      )
      expect(new TextDecoder().decode(values[0])).toBe("configured")
      const without = yield* Effect.exit(
        Effect.gen(function* () {
          const store = yield* Store.Store
          return yield* store.get(["k"])
        }).pipe(
          Effect.provide(Client.layerConfig({ address: server.address })),
          Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({}))
        )
      )
      expect(String(without)).toContain("Denied")
      expect(server.output()).not.toContain(secret)
    })
  )
})
