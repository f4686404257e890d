/**
 * The web dashboard: one page served by every node's API. It follows the node's status event
 * stream (members, store, traffic, volumes) and calls the files API for the file browser.
 */
import { render } from 'preact';
import { html } from 'htm/preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { EventSnapshot } from '../events.js';
import type { FileEntryView, PeerView } from '../types.js';
import type { VolumeView } from '../volume-routes.js';
import { ApiError, downloadFile, initialToken, listFiles, removeFile, saveToken, streamEvents, uploadFile, type StreamState } from './api.js';
import { Chart } from './chart.js';
import { ago, bytes, date, duration, percent, shortId } from './format.js';

/** Seconds of throughput history kept for the charts. */
const HISTORY = 120;
/** The file list is also refreshed on this period, for names written through other nodes. */
const FILES_REFRESH_MS = 15_000;

interface RatePoint {
  peerIn: number;
  peerOut: number;
  apiIn: number;
  apiOut: number;
}

function useSnapshots(token: string) {
  const [snap, setSnap] = useState<EventSnapshot | null>(null);
  const [state, setState] = useState<StreamState>({ kind: 'connecting' });
  const [history, setHistory] = useState<RatePoint[]>([]);
  const prev = useRef<EventSnapshot | null>(null);
  useEffect(() => {
    prev.current = null;
    return streamEvents(
      token,
      (s) => {
        const p = prev.current;
        prev.current = s;
        setSnap(s);
        if (!p || p.status.nodeId !== s.status.nodeId) return;
        const dt = (Date.parse(s.at) - Date.parse(p.at)) / 1000;
        if (!(dt > 0)) return;
        const d = (a: number, b: number) => Math.max(0, a - b) / dt;
        const point: RatePoint = {
          peerIn: d(s.traffic.peerIn, p.traffic.peerIn),
          peerOut: d(s.traffic.peerOut, p.traffic.peerOut),
          apiIn: d(s.traffic.apiIn, p.traffic.apiIn),
          apiOut: d(s.traffic.apiOut, p.traffic.apiOut),
        };
        setHistory((h) => [...h.slice(-(HISTORY - 1)), point]);
      },
      setState,
    );
  }, [token]);
  return { snap, state, history };
}

function StateBadge(props: { state: string }) {
  return html`<span class=${`badge state-${props.state}`}>${props.state}</span>`;
}

function Bar(props: { used: number; capacity: number }) {
  const p = percent(props.used, props.capacity);
  const level = p > 90 ? 'high' : p > 75 ? 'mid' : 'low';
  return html`
    <div class="bar-wrap" title=${`${bytes(props.used)} of ${bytes(props.capacity)}`}>
      <div class="bar"><div class=${`fill ${level}`} style=${{ width: `${p.toFixed(1)}%` }}></div></div>
      <span class="bar-text">${bytes(props.used)} / ${bytes(props.capacity)}</span>
    </div>
  `;
}

function Header(props: { snap: EventSnapshot | null; state: StreamState; token: string; setToken: (t: string) => void }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState('');
  const s = props.snap?.status;
  const conn = props.state.kind === 'live' ? 'live' : props.state.kind === 'connecting' ? 'connecting' : props.state.auth ? 'needs token' : 'reconnecting';
  return html`
    <header>
      <div class="brand">
        <span class="logo" aria-hidden="true"></span>
        <h1>tessera</h1>
        ${s && html`<span class="meta">node <code>${shortId(s.nodeId)}</code> · cluster <code>${shortId(s.clusterId)}</code> · v${s.version} · up ${duration(s.uptimeSec)}</span>`}
      </div>
      <div class="header-right">
        <span class=${`conn conn-${props.state.kind}`} data-testid="conn" data-state=${props.state.kind} title=${props.state.kind === 'retrying' ? props.state.error : ''}>
          <i></i>${conn}
        </span>
        ${editing
          ? html`<form class="token-form" onSubmit=${(e: Event) => {
              e.preventDefault();
              props.setToken(draft.trim());
              setEditing(false);
            }}>
              <input type="password" placeholder="API token (DATA/api-token)" data-testid="token-input" value=${draft}
                onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} autofocus />
              <button type="submit">Save</button>
              <button type="button" class="ghost" onClick=${() => setEditing(false)}>Cancel</button>
            </form>`
          : html`<button class="ghost" data-testid="token-button" onClick=${() => { setDraft(''); setEditing(true); }}>
              ${props.token ? 'Token set · change' : 'Set API token'}
            </button>`}
      </div>
    </header>
  `;
}

/** The parts of the repair loop's report the page shows (absent on nodes that do not report it). */
interface RepairView {
  running: boolean;
  underReplicatedChunks: number;
  waitingForGraceChunks: number;
  current: { checked: number; restoredCopies: number; restoredBytes: number } | null;
  totals: { bytesRestored: number };
  deadMembers: Array<{ nodeId: string; repairInMs: number }>;
}

function repairLine(r: RepairView | undefined): string | null {
  if (!r) return null;
  const parts: string[] = [];
  if (r.running && r.current) parts.push(`repairing: ${r.current.restoredCopies} copies (${bytes(r.current.restoredBytes)}) restored so far`);
  const waiting = r.deadMembers.filter((d) => d.repairInMs > 0);
  if (waiting.length) parts.push(`${waiting.length} dead member${waiting.length > 1 ? 's' : ''}: repair starts in ${Math.ceil(Math.min(...waiting.map((d) => d.repairInMs)) / 1000)} s`);
  if (r.waitingForGraceChunks > 0) parts.push(`${r.waitingForGraceChunks} chunks wait for the grace period`);
  parts.push(`${bytes(r.totals.bytesRestored)} restored since start`);
  return parts.join(' · ');
}

function Summary(props: { snap: EventSnapshot; last: RatePoint | undefined }) {
  const { status, redundancy, volumes } = props.snap;
  const repair = (status as typeof status & { repair?: RepairView }).repair;
  const detail = repairLine(repair);
  const live = status.peers.filter((p) => p.state === 'alive');
  const cap = live.reduce((a, p) => a + p.capacity, 0);
  const used = live.reduce((a, p) => a + p.used, 0);
  const degraded = volumes.filter((v) => v.status?.degraded || v.status?.failed).length;
  return html`
    <section class="cards">
      <div class="card" data-testid="card-members">
        <h3>Members</h3>
        <div class="big">${status.members.alive}<small> / ${status.peers.length} alive</small></div>
        <div class="sub">
          <span class="dot state-suspect"></span>${status.members.suspect} suspect
          <span class="dot state-dead"></span>${status.members.dead} dead
          <span class="dot state-left"></span>${status.members.left} left
        </div>
      </div>
      <div class="card">
        <h3>Cluster capacity</h3>
        <div class="big">${bytes(used)}<small> of ${bytes(cap)}</small></div>
        <${Bar} used=${used} capacity=${cap} />
      </div>
      <div class="card" data-testid="card-redundancy">
        <h3>Redundancy</h3>
        ${redundancy
          ? html`<div class="big">${redundancy.chunks === 0 ? 'healthy' : bytes(redundancy.bytes)}<small>${redundancy.chunks === 0 ? '' : ' under-replicated'}</small></div>
              <div class="sub">${detail ?? `${redundancy.chunks} chunks waiting for repair · ${redundancy.repairedChunks} repaired`}</div>`
          : html`<div class="big muted">—</div><div class="sub">The repair backlog is not reported by this node yet.</div>`}
        ${degraded > 0 && html`<div class="sub warn">${degraded} volume${degraded > 1 ? 's' : ''} degraded</div>`}
      </div>
      <div class="card">
        <h3>Throughput now</h3>
        <div class="big">${bytes(props.last ? props.last.peerIn + props.last.peerOut : 0)}<small>/s between nodes</small></div>
        <div class="sub">clients ↑ ${bytes(props.last?.apiIn ?? 0)}/s · ↓ ${bytes(props.last?.apiOut ?? 0)}/s</div>
      </div>
    </section>
  `;
}

function Members(props: { peers: PeerView[] }) {
  return html`
    <section class="panel">
      <div class="panel-head"><h2>Members</h2><span class="muted">${props.peers.length} known</span></div>
      <table data-testid="members">
        <thead><tr><th>Node</th><th>Address</th><th>Zone</th><th>State</th><th class="wide">Capacity</th><th>Last seen</th></tr></thead>
        <tbody>
          ${props.peers.map((p) => html`
            <tr key=${p.nodeId} data-testid="member-row" data-node-id=${p.nodeId} data-state=${p.state}>
              <td><code title=${p.nodeId}>${shortId(p.nodeId)}</code>${p.self && html` <span class="tag">this node</span>`}</td>
              <td>${p.addr}</td>
              <td data-testid="member-zone">${p.zone || html`<span class="muted">—</span>`}</td>
              <td><${StateBadge} state=${p.state} /></td>
              <td class="wide">${p.state === 'dead' || p.state === 'left' ? html`<span class="muted">—</span>` : html`<${Bar} used=${p.used} capacity=${p.capacity} />`}</td>
              <td class="muted">${ago(p.lastSeenAgoMs)}</td>
            </tr>`)}
        </tbody>
      </table>
    </section>
  `;
}

function Traffic(props: { history: RatePoint[] }) {
  const h = props.history;
  return html`
    <section class="panel charts">
      <${Chart} title="Between nodes" testid="chart-peer" capacity=${HISTORY} series=${[
        { label: 'in', color: '#2563eb', values: h.map((p) => p.peerIn) },
        { label: 'out', color: '#16a34a', values: h.map((p) => p.peerOut) },
      ]} />
      <${Chart} title="Clients (this API)" testid="chart-api" capacity=${HISTORY} series=${[
        { label: 'upload', color: '#9333ea', values: h.map((p) => p.apiIn) },
        { label: 'download', color: '#ea580c', values: h.map((p) => p.apiOut) },
      ]} />
    </section>
  `;
}

interface Transfer {
  id: number;
  name: string;
  kind: 'upload' | 'download';
  loaded: number;
  total: number;
  error?: string;
}

function baseName(name: string): string {
  const i = name.lastIndexOf('/');
  return (i >= 0 ? name.slice(i + 1) : name) || 'download.bin';
}

function Files(props: { token: string; changeKey: string; notify: (msg: string, error?: boolean) => void }) {
  const [files, setFiles] = useState<FileEntryView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [query, setQuery] = useState('');
  const [transfers, setTransfers] = useState<Transfer[]>([]);
  const [confirming, setConfirming] = useState<string | null>(null);
  const nextId = useRef(1);

  const refresh = useCallback(async () => {
    try {
      setFiles(await listFiles(props.token));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [props.token]);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => void refresh(), FILES_REFRESH_MS);
    return () => clearInterval(t);
  }, [refresh, props.changeKey]);

  const track = (t: Transfer) => setTransfers((all) => [...all.filter((x) => x.id !== t.id), t]);
  const finish = (id: number) => setTransfers((all) => all.filter((x) => x.id !== id));

  const onPick = async (e: Event) => {
    const input = e.target as HTMLInputElement;
    const picked = [...(input.files ?? [])];
    input.value = '';
    for (const file of picked) {
      const t: Transfer = { id: nextId.current++, name: file.name, kind: 'upload', loaded: 0, total: file.size };
      track(t);
      try {
        const r = await uploadFile(props.token, file, file.name, (loaded, total) => track({ ...t, loaded, total })).done;
        props.notify(`Stored ${file.name} (${bytes(r.size)}, ${r.chunks} chunk${r.chunks === 1 ? '' : 's'}, ${r.newChunks} new)`);
        finish(t.id);
      } catch (err) {
        const msg = err instanceof ApiError && err.status === 401 ? 'uploads need the API token: set it at the top right' : (err as Error).message;
        props.notify(`Upload of ${file.name} failed: ${msg}`, true);
        finish(t.id);
      }
      await refresh();
    }
  };

  const onDownload = async (f: FileEntryView) => {
    const t: Transfer = { id: nextId.current++, name: f.name, kind: 'download', loaded: 0, total: f.size };
    track(t);
    try {
      const blob = await downloadFile(props.token, f.name, (loaded, total) => track({ ...t, loaded, total: total || f.size }));
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = baseName(f.name);
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      props.notify(`Download of ${f.name} failed: ${(err as Error).message}`, true);
    } finally {
      finish(t.id);
    }
  };

  const onDelete = async (f: FileEntryView) => {
    setConfirming(null);
    try {
      await removeFile(props.token, f.name);
      props.notify(`Deleted ${f.name}`);
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 401 ? 'deleting needs the API token: set it at the top right' : (err as Error).message;
      props.notify(`Delete of ${f.name} failed: ${msg}`, true);
    }
    await refresh();
  };

  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    const list = files ?? [];
    return (q ? list.filter((f) => f.name.toLowerCase().includes(q)) : list).slice().sort((a, b) => a.name.localeCompare(b.name));
  }, [files, query]);

  return html`
    <section class="panel" data-testid="files">
      <div class="panel-head">
        <h2>Files</h2>
        <span class="muted">${files ? `${files.length} named` : ''}</span>
        <div class="spacer"></div>
        <input class="search" type="search" placeholder="Search by name" data-testid="file-search" value=${query}
          onInput=${(e: Event) => setQuery((e.target as HTMLInputElement).value)} />
        <label class="button">Upload<input type="file" multiple data-testid="upload-input" onChange=${onPick} /></label>
      </div>
      ${transfers.length > 0 && html`
        <div class="transfers">
          ${transfers.map((t) => html`
            <div class="transfer" data-testid="transfer">
              <span>${t.kind === 'upload' ? '↑' : '↓'} ${t.name}</span>
              <div class="bar"><div class="fill low" style=${{ width: `${percent(t.loaded, t.total || 1).toFixed(1)}%` }}></div></div>
              <span class="muted">${bytes(t.loaded)} / ${bytes(t.total)}</span>
            </div>`)}
        </div>`}
      ${error && html`<div class="error">Cannot list files: ${error}</div>`}
      <table>
        <thead><tr><th>Name</th><th>Size</th><th>Created</th><th>ETag</th><th>Id</th><th></th></tr></thead>
        <tbody>
          ${shown.map((f) => html`
            <tr key=${f.name} data-testid="file-row" data-name=${f.name}>
              <td class="name">${f.name}</td>
              <td>${bytes(f.size)}</td>
              <td class="muted">${date(f.createdAt)}</td>
              <td><code title=${f.etag}>${f.etag.slice(0, 8) || '-'}</code></td>
              <td><code title=${f.fileId}>${f.fileId.slice(0, 14)}…</code></td>
              <td class="actions">
                <button class="ghost" data-testid="download" onClick=${() => onDownload(f)}>Download</button>
                ${confirming === f.name
                  ? html`<button class="danger" data-testid="confirm-delete" onClick=${() => onDelete(f)}>Delete for good</button>
                      <button class="ghost" onClick=${() => setConfirming(null)}>Keep</button>`
                  : html`<button class="ghost" data-testid="delete" onClick=${() => setConfirming(f.name)}>Delete</button>`}
              </td>
            </tr>`)}
          ${files && shown.length === 0 && html`<tr><td colspan="6" class="empty">${query ? 'No file matches.' : 'No named files yet: upload one.'}</td></tr>`}
        </tbody>
      </table>
    </section>
  `;
}

function volumeState(v: VolumeView): { label: string; cls: string } {
  if (!v.status) return { label: 'not served here', cls: 'left' };
  if (v.status.failed) return { label: 'failed', cls: 'dead' };
  if (v.status.degraded) return { label: 'degraded', cls: 'suspect' };
  return { label: 'healthy', cls: 'alive' };
}

function Volumes(props: { volumes: VolumeView[] }) {
  return html`
    <section class="panel" data-testid="volumes">
      <div class="panel-head"><h2>Volumes</h2><span class="muted">${props.volumes.length}</span></div>
      <table>
        <thead><tr><th>Name</th><th>Layout</th><th>Size</th><th>Stripe unit</th><th>Members</th><th>State</th><th>Dirty units</th></tr></thead>
        <tbody>
          ${props.volumes.map((v) => {
            const st = volumeState(v);
            const down = v.status ? v.status.members.filter((m) => m.state !== 'up').length : 0;
            return html`
              <tr key=${v.id} data-testid="volume-row" data-name=${v.name} data-state=${st.label}>
                <td class="name">${v.name}</td>
                <td><span class="tag">${v.layout}</span></td>
                <td>${bytes(v.size)}</td>
                <td>${bytes(v.unitSize)}</td>
                <td>${v.members.length}${down > 0 ? html` <span class="warn">(${down} not up)</span>` : ''}</td>
                <td><span class=${`badge state-${st.cls}`}>${st.label}</span></td>
                <td>${v.status ? v.status.dirtyUnits : html`<span class="muted">—</span>`}</td>
              </tr>`;
          })}
          ${props.volumes.length === 0 && html`<tr><td colspan="7" class="empty">No volumes. Create one with <code>tessera volume create NAME --size 1G --layout raid5</code>.</td></tr>`}
        </tbody>
      </table>
    </section>
  `;
}

function App() {
  const [token, setTokenState] = useState(initialToken);
  const [toast, setToast] = useState<{ msg: string; error: boolean } | null>(null);
  const { snap, state, history } = useSnapshots(token);
  const setToken = (t: string) => {
    saveToken(t);
    setTokenState(t);
  };
  const notify = useCallback((msg: string, error = false) => {
    setToast({ msg, error });
  }, []);
  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(null), toast.error ? 10_000 : 4_000);
    return () => clearTimeout(t);
  }, [toast]);
  const changeKey = snap?.files ? `${snap.files.puts}/${snap.files.removes}` : '';
  return html`
    <${Header} snap=${snap} state=${state} token=${token} setToken=${setToken} />
    <main>
      ${state.kind === 'retrying' && state.auth && html`<div class="error">This node requires the API token even for reads: set it at the top right (it is in DATA/api-token, or run <code>tessera dashboard --data DIR</code>).</div>`}
      ${snap
        ? html`
            <${Summary} snap=${snap} last=${history[history.length - 1]} />
            <${Members} peers=${snap.status.peers} />
            <${Traffic} history=${history} />
            <${Files} token=${token} changeKey=${changeKey} notify=${notify} />
            <${Volumes} volumes=${snap.volumes} />`
        : html`<div class="loading">Connecting to the node…</div>`}
    </main>
    ${toast && html`<div class=${`toast ${toast.error ? 'toast-error' : ''}`} data-testid="toast" role="status">${toast.msg}</div>`}
  `;
}

const root = document.getElementById('app');
if (root) render(html`<${App} />`, root);
