// The web UI's frame: opens the session, asks the node which roles it runs, and shows the
// pages for those roles (hash routing: #/store, #/library, #/seller, #/escrow, #/agency).
import { useEffect, useState } from 'preact/hooks'
import { asCallError, call, openSession } from './api.ts'
import type { AnswerOf, CallError } from './api.ts'
import { ErrorBox, Id } from './components.tsx'
import { StorePage } from './pages/store.tsx'
import { LibraryPage } from './pages/library.tsx'
import { SellerPage } from './pages/seller.tsx'
import { EscrowPage } from './pages/escrow.tsx'
import { AgencyPage } from './pages/agency.tsx'

interface Page { path: string, title: string, role: string, view: () => preact.JSX.Element }

const PAGES: Page[] = [
  { path: 'store', title: 'Store', role: 'buyer', view: StorePage },
  { path: 'library', title: 'Library', role: 'buyer', view: LibraryPage },
  { path: 'seller', title: 'Seller', role: 'seller', view: SellerPage },
  { path: 'escrow', title: 'Escrow', role: 'escrow', view: EscrowPage },
  { path: 'agency', title: 'Agency', role: 'agency', view: AgencyPage }
]

function currentPath (): string {
  return location.hash.replace(/^#\/?/, '')
}

export function App (): preact.JSX.Element {
  const [status, setStatus] = useState<AnswerOf<'status'>>()
  const [error, setError] = useState<CallError>()
  const [path, setPath] = useState(currentPath())

  useEffect(() => {
    openSession().then(async () => { setStatus(await call('status', {})) }).catch((err: unknown) => { setError(asCallError(err)) })
    const onHash = (): void => { setPath(currentPath()) }
    addEventListener('hashchange', onHash)
    return () => { removeEventListener('hashchange', onHash) }
  }, [])

  if (error != null) {
    return (
      <main class='signin'>
        <h1>keyfair</h1>
        <ErrorBox error={error} what={error.code === 'ERR_UNAUTHORIZED' ? 'Not signed in' : 'The node did not answer'} />
        <p>Run <code>keyfair ui</code> on this machine and open the one-time address it prints.</p>
      </main>
    )
  }
  if (status == null) return <main aria-busy='true'><p class='live' role='status'>Connecting to the node…</p></main>

  const pages = PAGES.filter(p => status.roles.includes(p.role as typeof status.roles[number]))
  const page = pages.find(p => p.path === path) ?? pages[0]
  return (
    <>
      <a class='skip' href='#content'>Skip to content</a>
      <header class='top'>
        <span class='brand'>keyfair</span>
        <nav aria-label='Pages'>
          <ul>{pages.map(p => <li key={p.path}><a href={`#/${p.path}`} aria-current={p === page ? 'page' : undefined}>{p.title}</a></li>)}</ul>
        </nav>
        <span class='node'>node <Id value={status.peerId} /> · {status.roles.join(', ')} · v{status.version}</span>
      </header>
      <main id='content' tabIndex={-1}>
        {page == null ? <p>This node runs no role with pages ({status.roles.join(', ') || 'none'}).</p> : <><h1>{page.title}</h1><page.view /></>}
      </main>
    </>
  )
}
