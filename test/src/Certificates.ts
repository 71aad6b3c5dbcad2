/**
 * Throwaway TLS material for tests and the benchmark, made with the
 * machine's `openssl`: a CA, a server certificate for 127.0.0.1 and
 * localhost signed by it, and a client certificate signed by it (for mutual
 * TLS), plus a second CA that signed nothing of these (to show a client that
 * trusts the wrong CA is refused). Everything lives in a fresh directory,
 * removed when the process exits.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"

/** PEM text of each piece, and where it is on disk (for `partd-server`'s flags). */
export interface Certificates {
  readonly dir: string
  readonly ca: string
  readonly otherCa: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  readonly files: {
    readonly ca: string
    readonly serverCert: string
    readonly serverKey: string
  }
}

const openssl = (dir: string, args: ReadonlyArray<string>) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })

/** A key and a certificate request for `cn`, signed by the CA in `dir` with the extensions in `ext`. */
const issue = (dir: string, name: string, cn: string, ext: string) => {
  fs.writeFileSync(nodePath.join(dir, `${name}.ext`), ext)
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`])
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`])
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`
  ])
}

const selfSigned = (dir: string, name: string, cn: string) => {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`])
  openssl(dir, [
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-subj",
    `/CN=${cn}`,
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    `${name}.pem`
  ])
}

let made: Certificates | undefined

/** The certificates (made once per process). */
export const make = (): Certificates => {
  if (made !== undefined) return made
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-tls-"))
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
  selfSigned(dir, "ca", "partd test CA")
  selfSigned(dir, "other-ca", "another CA")
  issue(
    dir,
    "server",
    "localhost",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
  )
  issue(dir, "client", "partd worker", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
  const read = (file: string) => fs.readFileSync(nodePath.join(dir, file), "utf8")
  made = {
    dir,
    ca: read("ca.pem"),
    otherCa: read("other-ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    files: {
      ca: nodePath.join(dir, "ca.pem"),
      serverCert: nodePath.join(dir, "server.pem"),
      serverKey: nodePath.join(dir, "server.key")
    }
  }
  return made
}
