import { Link } from "react-router-dom";
import { useAuth } from "../auth";
import { usePageTitle } from "../hooks";

export function HomePage() {
  usePageTitle("Home");
  const { session } = useAuth();
  return (
    <section>
      <h1>Welcome, {session?.user.name || session?.user.email}</h1>
      <p>
        Workspace <strong>{session?.workspace.name}</strong>, role {session?.role}.
      </p>
      <ul className="cards">
        <li><Link to="/chat">Chat</Link> — channels, groups and direct messages, live.</li>
        <li><Link to="/track">Tracking</Link> — projects, runs, metric charts, artifacts, sweeps, registry.</li>
        <li><Link to="/embed">Embed playground</Link> — embed texts and compare them.</li>
        <li><Link to="/bus">Bus monitor</Link> — topics, rates and consumer lag.</li>
        <li><Link to="/relay">Relay admin</Link> — upstream accounts, keys, usage.</li>
        <li><Link to="/keys">API keys</Link> and <Link to="/workspace">workspace members and invites</Link>.</li>
      </ul>
    </section>
  );
}
