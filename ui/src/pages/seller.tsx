// Seller: publish a file by its path on this machine (encrypted, split over t-of-n escrows,
// announced) with live progress, the contents this node holds and offers, and its sales and
// their holds at each escrow.
import { useState } from 'preact/hooks'
import { formatBytes, formatMoney, parseMoney } from '../../../node/format.ts'
import { asCallError, call, stream } from '../api.ts'
import type { AnswerOf, CallError, ProgressOf, RequestOf } from '../api.ts'
import { Check, ConfirmButton, ErrorBox, Field, Id, Live, Section, useCall } from '../components.tsx'

interface PublishForm { file: string, title: string, tags: string, price: string, currency: string, escrows: string, addresses: string, open: boolean }

const BLANK: PublishForm = { file: '', title: '', tags: '', price: '', currency: 'EUR', escrows: '1-of-1', addresses: '', open: false }

export function SellerPage (): preact.JSX.Element {
  const contents = useCall('contents', {})
  return (
    <div>
      <Publish onPublished={contents.reload} />
      <Section title='Contents' actions={<button type='button' onClick={contents.reload}>Refresh</button>}>
        <ErrorBox error={contents.error} what='Could not read the contents' />
        {contents.data?.contents.length === 0 && <p>Nothing held yet.</p>}
        {contents.data != null && contents.data.contents.length > 0 && (
          <table class='list contents'>
            <thead><tr><th scope='col'>Content</th><th scope='col'>Size</th><th scope='col'>Chunks</th><th scope='col'>State</th><th scope='col'>Offers</th><th scope='col'>Actions</th></tr></thead>
            <tbody>
              {contents.data.contents.map(c => (
                <tr key={c.content} data-content={c.content}>
                  <td><Id value={c.content} /></td><td>{formatBytes(c.size)}</td><td>{c.chunkCount}</td>
                  <td>{c.complete ? 'complete' : 'partial'}</td><td>{c.offers}</td>
                  <td><Remove content={c.content} onRemoved={contents.reload} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Sales />
    </div>
  )
}

/** This node's sales at one escrow: each hold paying it, open, released to it or refunded */
function Sales (): preact.JSX.Element {
  const [escrow, setEscrow] = useState('')
  const [account, setAccount] = useState<AnswerOf<'balance'>>()
  const [error, setError] = useState<CallError>()
  const show = async (e: Event): Promise<void> => {
    e.preventDefault()
    setError(undefined)
    try {
      setAccount(await call('balance', { escrow: escrow.trim() }))
    } catch (err) {
      setAccount(undefined)
      setError(asCallError(err))
    }
  }
  const sales = account?.sales ?? []
  return (
    <Section title='Sales'>
      <form class='grid' onSubmit={e => { void show(e) }}>
        <Field label='Escrow (peer id or address)' name='escrow' value={escrow} onInput={setEscrow} hint='one of the escrows your offers name' />
        <div class='actions'><button type='submit' disabled={escrow.trim() === ''}>Show sales</button></div>
      </form>
      <ErrorBox error={error} what='Could not read the account at this escrow' />
      {account != null && (
        <Live>
          <p>Balance at this escrow: {formatMoney(account.balance, account.currency)}; {sales.length} {sales.length === 1 ? 'sale' : 'sales'}, {sales.filter(s => s.state === 'open').length} held.</p>
        </Live>
      )}
      {sales.length > 0 && account != null && (
        <table class='list sales'>
          <thead><tr><th scope='col'>Purchase</th><th scope='col'>Hold</th><th scope='col'>Amount</th><th scope='col'>State</th><th scope='col'>Held until</th></tr></thead>
          <tbody>
            {sales.map(s => (
              <tr key={s.hold} data-purchase={s.purchase}>
                <td><Id value={s.purchase} /></td><td><Id value={s.hold} /></td><td>{formatMoney(s.amount, account.currency)}</td>
                <td class='sale-state'>{s.state}</td><td>{s.state === 'open' ? new Date(s.expiresAt).toLocaleString() : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  )
}

function Remove (props: { content: string, onRemoved: () => void }): preact.JSX.Element {
  const [error, setError] = useState<CallError>()
  return (
    <>
      <ConfirmButton label='Remove' danger question='Remove this content and its offers from this node?' onConfirm={async () => {
        try {
          await call('remove', { content: props.content })
          props.onRemoved()
        } catch (err) {
          setError(asCallError(err))
        }
      }} />
      <ErrorBox error={error} what='Remove failed' />
    </>
  )
}

/** The request the form stands for, or the reason it is not one yet */
function publishRequest (form: PublishForm): { request: RequestOf<'publish'> } | { problem: string } {
  const match = /^\s*(\d+)\s*-of-\s*(\d+)\s*$/.exec(form.escrows)
  if (match == null) return { problem: `escrows '${form.escrows}' is not t-of-n (e.g. 2-of-3)` }
  let price: number
  try {
    price = parseMoney(form.price, form.currency.trim())
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) }
  }
  return {
    request: {
      file: form.file.trim(),
      title: form.title.trim(),
      tags: form.tags.split(',').map(t => t.trim()).filter(t => t !== ''),
      price,
      currency: form.currency.trim(),
      t: Number(match[1]),
      n: Number(match[2]),
      escrows: form.addresses.split(/\s+/).filter(a => a !== ''),
      open: form.open
    }
  }
}

function Publish (props: { onPublished: () => void }): preact.JSX.Element {
  const [form, setForm] = useState<PublishForm>(BLANK)
  const [phase, setPhase] = useState<ProgressOf<'publish'>>()
  const [result, setResult] = useState<AnswerOf<'publish'>>()
  const [error, setError] = useState<CallError>()
  const [busy, setBusy] = useState(false)
  const set = (key: keyof PublishForm) => (value: string | boolean) => { setForm(f => ({ ...f, [key]: value })) }

  const publish = async (e: Event): Promise<void> => {
    e.preventDefault()
    setError(undefined)
    setResult(undefined)
    const built = publishRequest(form)
    if ('problem' in built) {
      setError(asCallError(new Error(built.problem)))
      return
    }
    setBusy(true)
    try {
      setResult(await stream('publish', built.request, setPhase))
      props.onPublished()
    } catch (err) {
      setError(asCallError(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Section title='Publish a work'>
      <form class='grid' onSubmit={e => { void publish(e) }}>
        <Field label='File (a path on this machine)' name='file' value={form.file} onInput={set('file')} placeholder='/home/me/song.wav' />
        <Field label='Title' name='title' value={form.title} onInput={set('title')} />
        <Field label='Tags (comma-separated)' name='tags' value={form.tags} onInput={set('tags')} />
        <Field label='Price to each escrow' name='price' value={form.price} onInput={set('price')} hint='minor units (1250) or major units (12.50)' />
        <Field label='Currency' name='currency' value={form.currency} onInput={set('currency')} />
        <Field label='Escrows (t-of-n)' name='escrows' value={form.escrows} onInput={set('escrows')} hint='e.g. 2-of-3: any 2 of 3 escrows sell it' />
        <div class='field wide'>
          <label for='escrow-addresses'>Escrow addresses (peer ids or multiaddrs, one a line; the rest are picked from the DHT)</label>
          <textarea id='escrow-addresses' name='addresses' rows={3} value={form.addresses} onInput={e => { set('addresses')(e.currentTarget.value) }} />
        </div>
        <Check label='Open offer: also sells with this node offline (t escrows together could learn the key; needs t ≥ 2)' checked={form.open} onChange={set('open')} />
        <div class='actions wide'><button type='submit' class='primary' disabled={busy}>{busy ? 'Publishing…' : 'Publish'}</button></div>
      </form>
      {phase?.phase === 'encrypt' && <progress max={Math.max(phase.total, 1)} value={phase.bytes} aria-label='Encrypted' />}
      <Live>{busy && phase != null ? describe(phase) : ''}{result != null ? `Published '${result.title}'` : ''}</Live>
      {result != null && (
        <dl class='terms done'>
          <dt>Content</dt><dd><Id value={result.content} /></dd>
          <dt>Offer</dt><dd><Id value={result.offer} /></dd>
          <dt>Size</dt><dd>{formatBytes(result.size)}</dd>
          <dt>Price</dt><dd>{formatMoney(result.price, result.currency)} to each of {result.t} of {result.escrows.length} escrows</dd>
          <dt>Licence</dt><dd>{result.open ? 'open' : 'device-bound'}</dd>
          <dt>Announced</dt><dd>{result.announced ? 'yes, in the DHT' : 'not yet (no DHT peers)'}</dd>
        </dl>
      )}
      <ErrorBox error={error} what='Publish failed' />
    </Section>
  )
}

function describe (p: ProgressOf<'publish'>): string {
  switch (p.phase) {
    case 'escrows': return `${p.escrows.length} escrows checked with the agency`
    case 'encrypt': return `encrypting: ${formatBytes(p.bytes)} of ${formatBytes(p.total)}`
    case 'announce': return 'announcing'
  }
}
