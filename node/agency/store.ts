import type { Migration } from '../store/database.ts'
import type { CertificatePurpose } from '../../device/pki/index.ts'
import type { DatabaseSync } from 'node:sqlite'

export type EnrollmentKind = 'device' | 'escrow'

export const agencyMigrations: Migration[] = [{
  version: 1,
  up: `
  CREATE TABLE enrollment_codes (
    code_hash TEXT PRIMARY KEY,          -- SHA-256 of the normalised code: the code itself is never stored
    kind TEXT NOT NULL CHECK (kind IN ('device', 'escrow')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    used_by TEXT                          -- peer id of the node that enrolled with it
  );
  CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,              -- canonical lowercase hex
    purpose TEXT NOT NULL CHECK (purpose IN ('device-signing', 'device-encryption', 'escrow')),
    subject TEXT NOT NULL,                -- CN: device id or escrow peer id
    key_id TEXT NOT NULL,                 -- SHA-256 of the SPKI DER
    pem TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    code_hash TEXT REFERENCES enrollment_codes (code_hash)  -- NULL when issued by the operator
  );
  CREATE INDEX certificates_subject ON certificates (subject);
  CREATE INDEX certificates_key ON certificates (key_id);
  CREATE TABLE revocations (
    serial TEXT PRIMARY KEY REFERENCES certificates (serial),
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
  );
  CREATE TABLE crl (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    number INTEGER NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    der BLOB NOT NULL
  );`
}]

export interface CodeRecord {
  codeHash: string
  kind: EnrollmentKind
  createdAt: number
  expiresAt: number
  usedAt: number | undefined
  usedBy: string | undefined
}

export interface CertificateRecord {
  serial: string
  purpose: CertificatePurpose
  subject: string
  keyId: string
  pem: string
  notBefore: number
  notAfter: number
  issuedAt: number
  codeHash: string | undefined
  revokedAt: number | undefined
  reason: string | undefined
}

export interface CrlRecord {
  number: number
  thisUpdate: number
  nextUpdate: number
  der: Uint8Array
}

export interface AgencyCounts {
  codes: number
  usedCodes: number
  certificates: number
  revocations: number
  crlNumber: number
}

const CERT_COLUMNS = `c.serial, c.purpose, c.subject, c.key_id, c.pem, c.not_before, c.not_after, c.issued_at, c.code_hash,
  r.revoked_at, r.reason`

/** The agency's records. Callers group writes in `transaction()`; nothing here opens one. */
export class AgencyStore {
  private readonly db: DatabaseSync

  constructor (db: DatabaseSync) {
    this.db = db
  }

  insertCode (codeHash: string, kind: EnrollmentKind, createdAt: number, expiresAt: number): void {
    this.db.prepare('INSERT INTO enrollment_codes (code_hash, kind, created_at, expires_at) VALUES (?, ?, ?, ?)')
      .run(codeHash, kind, createdAt, expiresAt)
  }

  getCode (codeHash: string): CodeRecord | undefined {
    const row = this.db.prepare('SELECT * FROM enrollment_codes WHERE code_hash = ?').get(codeHash) as any
    if (row == null) return undefined
    return { codeHash: row.code_hash, kind: row.kind, createdAt: row.created_at, expiresAt: row.expires_at, usedAt: row.used_at ?? undefined, usedBy: row.used_by ?? undefined }
  }

  /** Marks a code used; false if it already was (the caller's check lost a race). */
  useCode (codeHash: string, at: number, by: string): boolean {
    const result = this.db.prepare('UPDATE enrollment_codes SET used_at = ?, used_by = ? WHERE code_hash = ? AND used_at IS NULL')
      .run(at, by, codeHash)
    return result.changes === 1
  }

  insertCertificate (cert: Omit<CertificateRecord, 'revokedAt' | 'reason'>): void {
    this.db.prepare(`INSERT INTO certificates (serial, purpose, subject, key_id, pem, not_before, not_after, issued_at, code_hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(cert.serial, cert.purpose, cert.subject, cert.keyId, cert.pem, cert.notBefore, cert.notAfter, cert.issuedAt, cert.codeHash ?? null)
  }

  /** Certificates whose serial is `serial` or whose subject is one of `subjects`. */
  matching (serials: string[], subjects: string[]): CertificateRecord[] {
    const numbers = [...new Set(serials)]
    const names = [...new Set(subjects)]
    const rows = this.db.prepare(`SELECT ${CERT_COLUMNS} FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
      WHERE c.serial IN (${numbers.map(() => '?').join(', ') || "''"}) OR c.subject IN (${names.map(() => '?').join(', ')}) ORDER BY c.issued_at, c.serial`)
      .all(...numbers, ...names)
    return rows.map(toCertificate)
  }

  /** True if a revoked certificate names this subject or carries one of these keys. */
  isRevoked (subject: string | undefined, keyIds: string[]): boolean {
    const row = this.db.prepare(`SELECT 1 FROM certificates c JOIN revocations r ON r.serial = c.serial
      WHERE c.subject = ? OR c.key_id IN (${keyIds.map(() => '?').join(', ')}) LIMIT 1`)
      .get(subject ?? '', ...keyIds)
    return row != null
  }

  revoke (serial: string, reason: string, at: number): void {
    this.db.prepare('INSERT INTO revocations (serial, reason, revoked_at) VALUES (?, ?, ?)').run(serial, reason, at)
  }

  revocations (): Array<{ serial: string, reason: string, revokedAt: number }> {
    return this.db.prepare('SELECT serial, reason, revoked_at FROM revocations ORDER BY revoked_at, serial').all()
      .map((row: any) => ({ serial: row.serial, reason: row.reason, revokedAt: row.revoked_at }))
  }

  certificates (): CertificateRecord[] {
    return this.db.prepare(`SELECT ${CERT_COLUMNS} FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
      ORDER BY c.issued_at, c.serial`).all().map(toCertificate)
  }

  getCrl (): CrlRecord | undefined {
    const row = this.db.prepare('SELECT number, this_update, next_update, der FROM crl WHERE id = 1').get() as any
    if (row == null) return undefined
    return { number: row.number, thisUpdate: row.this_update, nextUpdate: row.next_update, der: new Uint8Array(row.der) }
  }

  putCrl (crl: CrlRecord): void {
    this.db.prepare(`INSERT INTO crl (id, number, this_update, next_update, der) VALUES (1, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
        next_update = excluded.next_update, der = excluded.der`)
      .run(crl.number, crl.thisUpdate, crl.nextUpdate, crl.der)
  }

  counts (): AgencyCounts {
    const one = (sql: string): number => (this.db.prepare(sql).get() as { n: number | null }).n ?? 0
    return {
      codes: one('SELECT count(*) AS n FROM enrollment_codes'),
      usedCodes: one('SELECT count(*) AS n FROM enrollment_codes WHERE used_at IS NOT NULL'),
      certificates: one('SELECT count(*) AS n FROM certificates'),
      revocations: one('SELECT count(*) AS n FROM revocations'),
      crlNumber: one('SELECT max(number) AS n FROM crl')
    }
  }
}

function toCertificate (row: any): CertificateRecord {
  return {
    serial: row.serial,
    purpose: row.purpose,
    subject: row.subject,
    keyId: row.key_id,
    pem: row.pem,
    notBefore: row.not_before,
    notAfter: row.not_after,
    issuedAt: row.issued_at,
    codeHash: row.code_hash ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
    reason: row.reason ?? undefined
  }
}
