import { errorLine, fileErrorLine } from "../error_line.ts";

/** A certificate chain and its private key as PEM text, with the files they came from. */
export interface TlsCertificate {
  /** The certificate chain, server certificate first (PEM). */
  cert: string;
  /** The private key of the first certificate (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC). */
  key: string;
  /** Where `cert` came from, for messages. */
  certFile: string;
  /** Where `key` came from, for messages. */
  keyFile: string;
}

/** TLS cannot be set up: a file is missing, unreadable or not fit, or the runtime lacks a flag. */
export class TlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsError";
  }
}

/** Protocols announced by ALPN: only HTTP/1.1 is spoken, so no client may think otherwise. */
const ALPN = ["http/1.1"];

/**
 * Reads `--tls-cert` and `--tls-key` and checks that each holds PEM of its kind. Whether the key
 * belongs to the certificate is checked where it counts: by the TLS listener built with them
 * ({@linkcode listenTls}).
 */
export async function readTlsCertificate(
  certFile: string,
  keyFile: string,
): Promise<TlsCertificate> {
  const cert = await readPem("--tls-cert", certFile);
  const key = await readPem("--tls-key", keyFile);
  if (!/-----BEGIN CERTIFICATE-----/.test(cert)) {
    throw new TlsError(`--tls-cert ${certFile} holds no PEM certificate`);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(key)) {
    throw new TlsError(
      `--tls-key ${keyFile} is encrypted; Parley needs the key without a password`,
    );
  }
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(key)) {
    throw new TlsError(`--tls-key ${keyFile} holds no PEM private key`);
  }
  return { cert, key, certFile, keyFile };
}

async function readPem(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new TlsError(`cannot read ${flag} ${path}: ${fileErrorLine(error)}`);
  }
}

/**
 * True when this runtime may set SO_REUSEPORT, which Deno allows only with `--unstable-net`
 * (deno.json sets it). Without it, asking for the option ends the process, so it is asked first;
 * the flag also brings `Deno.listenDatagram`, which is how it shows.
 */
export function canReusePort(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

/**
 * A TLS listener on `hostname:port` with `certificate`, SO_REUSEPORT set so that a reload can
 * bind its successor beside it. With `exclusive`, the port is first bound without SO_REUSEPORT,
 * so a port someone else holds (another Parley included) is `AddrInUse` instead of shared.
 * A key that does not match its certificate, or PEM that holds nothing usable, is a TlsError.
 */
export function listenTls(
  hostname: string,
  port: number,
  certificate: TlsCertificate,
  exclusive: boolean,
): Deno.TlsListener {
  if (!canReusePort()) {
    throw new TlsError(
      "HTTPS needs Deno's --unstable-net (deno.json sets it; run `deno task start` or the " +
        "compiled binary, or pass --unstable-net)",
    );
  }
  if (exclusive) {
    const probe = Deno.listen({ hostname, port });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
  }
  try {
    return Deno.listenTls({
      hostname,
      port,
      cert: certificate.cert,
      key: certificate.key,
      alpnProtocols: ALPN,
      reusePort: true,
    });
  } catch (error) {
    throw explain(error, certificate);
  }
}

/**
 * Deno's words for an unusable pair, as one line naming the file; errors of the address (in use,
 * not available, not permitted) pass as they are.
 */
function explain(error: unknown, { certFile, keyFile }: TlsCertificate): unknown {
  if (
    !(error instanceof Error) || error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable
  ) {
    return error;
  }
  const message = errorLine(error);
  if (/KeyMismatch|not be consistent/i.test(message)) {
    return new TlsError(`--tls-key ${keyFile} does not match the certificate in ${certFile}`);
  }
  if (/certificate/i.test(message)) {
    return new TlsError(`--tls-cert ${certFile} holds no usable certificate: ${message}`);
  }
  if (/key/i.test(message)) {
    return new TlsError(`--tls-key ${keyFile} holds no usable private key: ${message}`);
  }
  return new TlsError(`cannot use --tls-cert ${certFile} with --tls-key ${keyFile}: ${message}`);
}
