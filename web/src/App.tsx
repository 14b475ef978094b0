// App shell: skip link, header with the workspace switcher and sign-out, navigation, routes.
// Signed-out visitors see only the sign-in and sign-up pages.
import { useRef, useState, type FormEvent } from "react";
import { Link, NavLink, Navigate, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { api, errorText } from "./api/client";
import { useAuth } from "./auth";
import { ErrorBox, Field, Select } from "./components/ui";
import { useLoad } from "./hooks";
import { SignInPage, SignUpPage } from "./pages/Auth";
import { HomePage } from "./pages/Home";
import { WorkspacePage } from "./pages/Workspace";
import { KeysPage } from "./pages/Keys";
import { EmbedPage } from "./pages/Embed";
import { BusPage } from "./pages/Bus";
import { ProjectsPage, ProjectPage } from "./pages/Track";
import { RunPage } from "./pages/Run";
import { ComparePage } from "./pages/Compare";
import { ArtifactsPage, RegistryPage, SweepsPage } from "./pages/TrackMore";
import { ChatPage, ChatSearchPage } from "./pages/Chat";
import { RelayPage } from "./pages/Relay";
import { RelayWebhooksPage } from "./pages/RelayWebhooks";

interface WorkspaceItem {
  id: string;
  name: string;
  role: string;
}

function WorkspaceSwitcher() {
  const { session, signIn } = useAuth();
  const list = useLoad(() => api.get<{ workspaces: WorkspaceItem[] }>("/api/v1/workspaces"), [session?.workspace.id]);
  const [target, setTarget] = useState<WorkspaceItem | null>(null);
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const box = useRef<HTMLDivElement>(null);
  // Closing the password popover returns focus to the workspace menu.
  const close = () => {
    setTarget(null);
    setPassword("");
    setError("");
    requestAnimationFrame(() => box.current?.querySelector("select")?.focus());
  };
  if (!session) return null;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!target) return;
    try {
      await signIn(session.user.email, password, target.id);
      close();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div className="ws-switcher" ref={box}>
      <Select
        label="Workspace"
        value={session.workspace.id}
        onChange={(e) => {
          const w = list.data?.workspaces.find((x) => x.id === e.target.value);
          if (w && w.id !== session.workspace.id) setTarget(w);
        }}
      >
        {(list.data?.workspaces ?? [{ id: session.workspace.id, name: session.workspace.name, role: session.role }]).map((w) => (
          <option key={w.id} value={w.id}>
            {w.name} ({w.role})
          </option>
        ))}
      </Select>
      {target && (
        <form className="popover" role="dialog" aria-label={`Switch to ${target.name}`} onSubmit={submit}
          onKeyDown={(e) => {
            if (e.key === "Escape") close();
          }}>
          <p>Confirm your password to switch to {target.name}.</p>
          <Field label="Password" type="password" autoComplete="current-password" autoFocus value={password} onChange={(e) => setPassword(e.target.value)} required />
          <ErrorBox error={error} />
          <button type="submit">Switch</button>{" "}
          <button type="button" onClick={close}>
            Cancel
          </button>
        </form>
      )}
    </div>
  );
}

const NAV: [string, string][] = [
  ["/", "Home"],
  ["/chat", "Chat"],
  ["/track", "Tracking"],
  ["/track/sweeps", "Sweeps"],
  ["/track/registry", "Model registry"],
  ["/embed", "Embed playground"],
  ["/bus", "Bus monitor"],
  ["/relay", "Relay admin"],
  ["/relay/webhooks", "Relay webhooks"],
  ["/keys", "API keys"],
  ["/workspace", "Workspace"],
];

function Shell() {
  const { session, signOut } = useAuth();
  const navigate = useNavigate();
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          Atrium
        </Link>
        <WorkspaceSwitcher />
        <span className="who" aria-label="Signed in as">
          {session?.user.name || session?.user.email}
        </span>
        <button
          type="button"
          onClick={async () => {
            await signOut();
            navigate("/signin");
          }}
        >
          Sign out
        </button>
      </header>
      <nav aria-label="Main" className="sidenav">
        <ul>
          {NAV.map(([to, label]) => (
            <li key={to}>
              <NavLink to={to} end={to === "/" || to === "/track" || to === "/relay"}>
                {label}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<HomePage />} />
          <Route path="/workspace" element={<WorkspacePage />} />
          <Route path="/keys" element={<KeysPage />} />
          <Route path="/embed" element={<EmbedPage />} />
          <Route path="/bus" element={<BusPage />} />
          <Route path="/track" element={<ProjectsPage />} />
          <Route path="/track/projects/:projectId" element={<ProjectPage />} />
          <Route path="/track/projects/:projectId/artifacts" element={<ArtifactsPage />} />
          <Route path="/track/runs/:runId" element={<RunPage />} />
          <Route path="/track/compare" element={<ComparePage />} />
          <Route path="/track/sweeps" element={<SweepsPage />} />
          <Route path="/track/registry" element={<RegistryPage />} />
          <Route path="/chat" element={<ChatPage />} />
          <Route path="/chat/search" element={<ChatSearchPage />} />
          <Route path="/chat/:chatId" element={<ChatPage />} />
          <Route path="/relay" element={<RelayPage />} />
          <Route path="/relay/webhooks" element={<RelayWebhooksPage />} />
          <Route path="/signin" element={<Navigate to="/" replace />} />
          <Route path="/signup" element={<Navigate to="/" replace />} />
          <Route path="*" element={<h1>Page not found</h1>} />
        </Routes>
      </main>
    </div>
  );
}

export function App() {
  const { session, loading } = useAuth();
  const location = useLocation();
  if (loading) return <p role="status">Loading…</p>;
  if (!session) {
    return (
      <main id="main" className="auth-main">
        <Routes>
          <Route path="/signup" element={<SignUpPage />} />
          <Route path="/signin" element={<SignInPage />} />
          <Route path="*" element={<Navigate to="/signin" replace state={{ from: location.pathname }} />} />
        </Routes>
      </main>
    );
  }
  return <Shell />;
}
