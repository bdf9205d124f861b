// The ingress's TLS certificate: self-signed, made fresh at every start, never checked by anyone.
// The gateway needs TLS only to read the SNI it routes by; the signed hello (hello.ts) says who is on
// the other end of the session, and WireGuard authenticates every datagram.
import { generate } from "selfsigned";

export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 365 * 24 * 3600 * 1000);
  const pems = await generate([{ name: "commonName", value: "attestmesh-ingress" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
  });
  return { key: pems.private, cert: pems.cert };
}
