// Library: the works this device holds a licence for (played in the page, or to a file) and
// its purchases (confirmed to release the escrows' holds, or disputed).
import { useState } from 'preact/hooks'
import { formatBytes, formatMoney } from '../../../node/format.ts'
import { asCallError, call, mediaUrl, stream } from '../api.ts'
import type { AnswerOf, CallError } from '../api.ts'
import { ConfirmButton, ErrorBox, Field, Id, Live, Section, Select, useCall, when } from '../components.tsx'

type Licence = AnswerOf<'library'>['licences'][number]
type Purchase = AnswerOf<'purchases'>['purchases'][number]

const MEDIA_TYPES = [
  ['audio/wav', 'audio: WAV'],
  ['audio/mpeg', 'audio: MP3'],
  ['audio/ogg', 'audio: Ogg'],
  ['audio/flac', 'audio: FLAC'],
  ['video/mp4', 'video: MP4'],
  ['video/webm', 'video: WebM'],
  ['file', 'other: play to a file']
] as const
type MediaType = typeof MEDIA_TYPES[number][0]

export function LibraryPage (): preact.JSX.Element {
  const library = useCall('library', {})
  const purchases = useCall('purchases', {})
  const device = useCall('device.status', {})
  return (
    <div>
      <Device status={device.data} error={device.error} />
      <Section title='Licences' actions={<button type='button' onClick={library.reload}>Refresh</button>}>
        <ErrorBox error={library.error} what='Could not read the library' />
        {library.data?.licences.length === 0 && <p>No licences yet: buy a work in the Store.</p>}
        {library.data?.licences.map(l => <LicenceRow key={l.content} licence={l} onRenewed={library.reload} />)}
      </Section>
      <Section title='Purchases' actions={<button type='button' onClick={purchases.reload}>Refresh</button>}>
        <ErrorBox error={purchases.error} what='Could not read the purchases' />
        {purchases.data?.purchases.length === 0 && <p>No purchases yet.</p>}
        {purchases.data != null && purchases.data.purchases.length > 0 && (
          <table class='list purchases'>
            <thead><tr><th scope='col'>Purchase</th><th scope='col'>Content</th><th scope='col'>State</th><th scope='col'>Shares</th><th scope='col'>Actions</th></tr></thead>
            <tbody>{purchases.data.purchases.map(p => <PurchaseRow key={p.purchase} purchase={p} onChange={purchases.reload} />)}</tbody>
          </table>
        )}
      </Section>
    </div>
  )
}

/** The sealed device's state: a revoked device is said so, at the top, with the agency's reason */
function Device (props: { status: AnswerOf<'device.status'> | undefined, error: CallError | undefined }): preact.JSX.Element | null {
  const s = props.status
  if (props.error != null) return <ErrorBox error={props.error} what='Could not read the device' />
  if (s == null) return null
  const revocation = s.revocation
  if (revocation?.state === 'revoked') {
    return <div class='error' role='alert'><p><strong>This device is revoked by the agency</strong>{revocation.reason != null ? ` (${revocation.reason})` : ''}: escrows refuse its purchases; enroll a new device.</p></div>
  }
  if (!s.initialised || !s.enrolled) {
    return <p class='meta'>The sealed device is {s.initialised ? 'not enrolled with an agency' : 'not initialised'} yet: see <code>keyfair device</code>.</p>
  }
  return <p class='meta'>Sealed device {s.deviceId != null ? <Id value={s.deviceId} /> : null}: {s.unlocked ? 'unlocked' : 'locked'}, enrolled.</p>
}

function LicenceRow (props: { licence: Licence, onRenewed: () => void }): preact.JSX.Element {
  const l = props.licence
  const [type, setType] = useState<MediaType>('audio/wav')
  const [playing, setPlaying] = useState<string>()
  const [output, setOutput] = useState('')
  const [played, setPlayed] = useState<string>()
  const [error, setError] = useState<CallError>()
  const [busy, setBusy] = useState(false)

  const playToFile = async (e: Event): Promise<void> => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    setPlayed(undefined)
    try {
      const r = await stream('play', { content: l.content, output: output.trim() }, p => {
        setPlayed(`${formatBytes(p.bytes)}${p.total != null ? ` of ${formatBytes(p.total)}` : ''} written`)
      })
      setPlayed(`wrote ${formatBytes(r.bytes)} to ${output.trim()}`)
    } catch (err) {
      setError(asCallError(err))
    } finally {
      setBusy(false)
    }
  }

  const renew = async (): Promise<void> => {
    setError(undefined)
    try {
      const r = await call('renew', { content: l.content })
      setPlayed(`Renewed by escrow ${r.escrow}: plays offline until ${when(r.playUntil)}`)
      props.onRenewed()
    } catch (err) {
      setError(asCallError(err))
    }
  }

  return (
    <article class='licence' data-content={l.content} aria-labelledby={`l-${l.content}`}>
      <h3 id={`l-${l.content}`}>{l.title}</h3>
      <p class='meta'>bought {when(l.purchasedAt)} · plays offline until {when(l.playUntil)}{l.renewedAt != null ? ` · renewed ${when(l.renewedAt)}` : ''} · content <Id value={l.content} /></p>
      <div class='row'>
        <Select label='Play as' value={type} options={MEDIA_TYPES} onChange={v => { setType(v); setPlaying(undefined) }} />
        {type !== 'file' && <button type='button' class='primary' onClick={() => { setPlaying(mediaUrl(l.content, type)) }}>Play here</button>}
        <button type='button' onClick={() => { void renew() }}>Renew licence</button>
      </div>
      {playing != null && type.startsWith('audio/') && <audio class='player' controls autoPlay src={playing} aria-label={`${l.title}, playing`} />}
      {playing != null && type.startsWith('video/') && <video class='player' controls autoPlay src={playing} aria-label={`${l.title}, playing`} />}
      {type === 'file' && (
        <form class='row' onSubmit={e => { void playToFile(e) }}>
          <Field label='Output file (a path on this machine)' value={output} onInput={setOutput} placeholder='/home/me/work.bin' />
          <button type='submit' class='primary' disabled={busy || output.trim() === ''}>Play to file</button>
        </form>
      )}
      <Live>{played ?? ''}</Live>
      <ErrorBox error={error} what='Play failed' />
    </article>
  )
}

function PurchaseRow (props: { purchase: Purchase, onChange: () => void }): preact.JSX.Element {
  const p = props.purchase
  const [result, setResult] = useState<{ what: string, answer: AnswerOf<'confirm'> }>()
  const [error, setError] = useState<CallError>()

  const settle = async (what: 'confirm' | 'dispute'): Promise<void> => {
    setError(undefined)
    try {
      setResult({ what, answer: await call(what, { purchase: p.purchase }) })
      props.onChange()
    } catch (err) {
      setError(asCallError(err))
    }
  }

  const open = p.state === 'complete' || p.state === 'failed' || p.state === 'open'
  return (
    <tr data-purchase={p.purchase} class={`state-${p.state}`}>
      <td><Id value={p.purchase} /></td>
      <td><Id value={p.content} /></td>
      <td>{p.state}{p.fault != null ? ` (fault: ${p.fault})` : ''}</td>
      <td>{p.accepted.length} of {p.t}{p.faulty.length > 0 ? `, ${p.faulty.length} faulty` : ''}</td>
      <td>
        {open && (
          <div class='actions'>
            <ConfirmButton label='Confirm' question='Confirm the purchase? The escrows release the price to the seller.' onConfirm={() => settle('confirm')} />
            <ConfirmButton label='Dispute' danger question='Dispute the purchase? The escrows judge it from the device proof.' onConfirm={() => settle('dispute')} />
          </div>
        )}
        <Live>{result != null ? `${result.what === 'confirm' ? 'Confirmed' : 'Disputed'}: ${settlement(result.answer)}` : ''}</Live>
        <ErrorBox error={error} what='Settlement failed' />
      </td>
    </tr>
  )
}

/** Each escrow's word on a settlement, in one line */
function settlement (r: AnswerOf<'confirm'>): string {
  return r.escrows.map(e => `escrow ${e.j}: ${e.error ?? `${formatMoney(r.price, r.currency)} ${e.state ?? ''}${e.refused === true ? ' (dispute refused)' : ''}${e.reason != null ? ` ${e.reason}` : ''}`}`).join('; ')
}
