// What a log line must never carry, masked before it is written: PEM private keys, and the
// secrets the process knows (its repo passphrase, its control API token).
const PEM_PRIVATE = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g

export function redact (text: string, secrets: readonly string[] = []): string {
  let out = text.replace(PEM_PRIVATE, '[redacted private key]')
  for (const secret of secrets) {
    if (secret !== '') out = out.split(secret).join('[redacted]')
  }
  return out
}
