// Agency: one-time enrollment codes for devices and escrows, the certificates issued, their
// revocation (confirmed first) and the current revocation list.
import { useState } from 'preact/hooks'
import { asCallError, call } from '../api.ts'
import type { AnswerOf, CallError } from '../api.ts'
import { ConfirmButton, ErrorBox, Field, Id, Live, Section, Select, useCall, when } from '../components.tsx'

type Certificate = AnswerOf<'agency.certs'>['certificates'][number]

export function AgencyPage (): preact.JSX.Element {
  const certs = useCall('agency.certs', {})
  const crl = useCall('agency.crl', {})
  const changed = (): void => { certs.reload(); crl.reload() }
  return (
    <div>
      <EnrollCode />
      <Revoke onRevoked={changed} />
      <Section title='Certificates issued' actions={<button type='button' onClick={changed}>Refresh</button>}>
        <ErrorBox error={certs.error} what='Could not read the certificates' />
        {certs.data?.certificates.length === 0 && <p>None issued yet.</p>}
        {certs.data != null && certs.data.certificates.length > 0 && (
          <table class='list certs'>
            <thead><tr><th scope='col'>Serial</th><th scope='col'>Purpose</th><th scope='col'>Subject</th><th scope='col'>Valid until</th><th scope='col'>State</th><th scope='col'>Actions</th></tr></thead>
            <tbody>{certs.data.certificates.map(c => <CertRow key={c.serial} cert={c} onRevoked={changed} />)}</tbody>
          </table>
        )}
      </Section>
      <Section title='Revocation list'>
        <ErrorBox error={crl.error} what='Could not read the revocation list' />
        {crl.data != null && (
          <dl class='terms crl'>
            <dt>Number</dt><dd>{crl.data.number}</dd>
            <dt>Revoked</dt><dd>{crl.data.revoked} certificate(s)</dd>
            <dt>Signed</dt><dd>{when(Date.parse(crl.data.thisUpdate))}</dd>
            <dt>Next update</dt><dd>{when(Date.parse(crl.data.nextUpdate))}</dd>
          </dl>
        )}
      </Section>
    </div>
  )
}

function EnrollCode (): preact.JSX.Element {
  const [kind, setKind] = useState<'device' | 'escrow'>('device')
  const [code, setCode] = useState<AnswerOf<'agency.enrollCode'>>()
  const [error, setError] = useState<CallError>()
  const make = async (): Promise<void> => {
    setError(undefined)
    try {
      setCode(await call('agency.enrollCode', { kind }))
    } catch (err) {
      setError(asCallError(err))
    }
  }
  return (
    <Section title='Enrollment code'>
      <div class='row'>
        <Select label='For' value={kind} options={[['device', 'a buyer device'], ['escrow', 'an escrow']] as const} onChange={setKind} />
        <button type='button' class='primary' onClick={() => { void make() }}>New code</button>
      </div>
      <Live>{code != null ? <>One-time {code.kind} code <code class='secret'>{code.code}</code>, valid until {when(Date.parse(code.expiresAt))}</> : ''}</Live>
      <ErrorBox error={error} what='No code' />
    </Section>
  )
}

function Revoke (props: { onRevoked: () => void }): preact.JSX.Element {
  const [target, setTarget] = useState('')
  const [reason, setReason] = useState('')
  const [done, setDone] = useState<string>()
  const [error, setError] = useState<CallError>()
  const revoke = async (): Promise<void> => {
    setError(undefined)
    setDone(undefined)
    try {
      setDone(revoked(await call('agency.revoke', { target: target.trim(), ...(reason.trim() !== '' ? { reason: reason.trim() } : {}) })))
      props.onRevoked()
    } catch (err) {
      setError(asCallError(err))
    }
  }
  return (
    <Section title='Revoke'>
      <div class='grid'>
        <Field label='Serial, device id or peer id' name='target' value={target} onInput={setTarget} />
        <Field label='Reason (optional)' name='reason' value={reason} onInput={setReason} hint='e.g. keyCompromise' />
      </div>
      <div class='actions'>
        <ConfirmButton label='Revoke' danger disabled={target.trim() === ''} question={`Revoke every certificate of ${target.trim()}? Escrows refuse it within seconds.`} onConfirm={revoke} />
      </div>
      <Live>{done ?? ''}</Live>
      <ErrorBox error={error} what='Revocation failed' />
    </Section>
  )
}

function CertRow (props: { cert: Certificate, onRevoked: () => void }): preact.JSX.Element {
  const c = props.cert
  const [done, setDone] = useState<string>()
  const [error, setError] = useState<CallError>()
  const revoke = async (): Promise<void> => {
    setError(undefined)
    try {
      setDone(revoked(await call('agency.revoke', { target: c.serial })))
      props.onRevoked()
    } catch (err) {
      setError(asCallError(err))
    }
  }
  return (
    <tr data-serial={c.serial} data-subject={c.subject} class={c.revokedAt != null ? 'state-revoked' : ''}>
      <td><Id value={c.serial} /></td><td>{c.purpose}</td><td><Id value={c.subject} /></td><td>{when(Date.parse(c.notAfter))}</td>
      <td class='cert-state'>{c.revokedAt != null ? `revoked ${when(Date.parse(c.revokedAt))}${c.reason != null ? ` (${c.reason})` : ''}` : 'valid'}</td>
      <td>
        {c.revokedAt == null && <ConfirmButton label='Revoke' danger question={`Revoke certificate ${c.serial}?`} onConfirm={revoke} />}
        <Live>{done ?? ''}</Live>
        <ErrorBox error={error} what='Revocation failed' />
      </td>
    </tr>
  )
}

function revoked (r: AnswerOf<'agency.revoke'>): string {
  return `Revoked ${r.revoked.length} certificate(s)${r.alreadyRevoked.length > 0 ? `, ${r.alreadyRevoked.length} already revoked` : ''}; revocation list number ${r.crlNumber}`
}
