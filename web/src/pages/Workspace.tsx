// Workspace: members (role changes, removal), invites (the code is shown once), accepting an
// invite, and creating another workspace. Switching happens in the header's switcher.
import { useState, type FormEvent } from "react";
import { api, errorText } from "../api/client";
import { useAuth } from "../auth";
import { ErrorBox, Field, Select, Status, fmtTime } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";

interface Member {
  user_id: string;
  email: string;
  name: string;
  role: string;
  joined_at: string;
}

export function WorkspacePage() {
  usePageTitle("Workspace");
  const { session } = useAuth();
  const ws = session!.workspace;
  const isAdmin = session!.role === "owner" || session!.role === "admin";
  const members = useLoad(() => api.get<{ members: Member[] }>(`/api/v1/workspaces/${ws.id}/members`), [ws.id]);
  const [error, setError] = useState("");
  const [note, setNote] = useState("");

  const [inviteEmail, setInviteEmail] = useState("");
  const [inviteRole, setInviteRole] = useState("member");
  const [invite, setInvite] = useState<{ code: string; role: string; expires_at: string } | null>(null);
  const createInvite = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const body: Record<string, string> = { role: inviteRole };
      if (inviteEmail.trim()) body.email = inviteEmail.trim();
      setInvite(await api.post(`/api/v1/workspaces/${ws.id}/invites`, body));
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  };

  const [code, setCode] = useState("");
  const accept = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const r = await api.post<{ workspace: { name: string }; role: string }>("/api/v1/invites/accept", { code: code.trim() });
      setNote(`Joined ${r.workspace.name} as ${r.role}. Switch to it with the workspace menu.`);
      setCode("");
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  };

  const [newName, setNewName] = useState("");
  const createWs = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const r = await api.post<{ name: string }>("/api/v1/workspaces", { name: newName.trim() });
      setNote(`Created workspace ${r.name}. Switch to it with the workspace menu.`);
      setNewName("");
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section>
      <h1>Workspace {ws.name}</h1>
      <ErrorBox error={error || members.error} />
      {note && <Status>{note}</Status>}
      <h2>Members</h2>
      <table>
        <caption className="sr-only">Members of {ws.name}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">Joined</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {members.data?.members.map((m) => (
            <tr key={m.user_id}>
              <td>{m.name || "—"}</td>
              <td>{m.email}</td>
              <td>
                {isAdmin && m.role !== "owner" ? (
                  <select
                    aria-label={`Role of ${m.email}`}
                    value={m.role}
                    onChange={async (e) => {
                      try {
                        await api.patch(`/api/v1/workspaces/${ws.id}/members/${m.user_id}`, { role: e.target.value });
                        members.reload();
                      } catch (err) {
                        setError(errorText(err));
                      }
                    }}
                  >
                    <option value="member">member</option>
                    <option value="admin">admin</option>
                  </select>
                ) : (
                  m.role
                )}
              </td>
              <td>{fmtTime(m.joined_at)}</td>
              <td>
                {m.role !== "owner" && (isAdmin || m.user_id === session!.user.id) && (
                  <button
                    type="button"
                    onClick={async () => {
                      if (!window.confirm(`Remove ${m.email} from ${ws.name}?`)) return;
                      try {
                        await api.del(`/api/v1/workspaces/${ws.id}/members/${m.user_id}`);
                        members.reload();
                      } catch (err) {
                        setError(errorText(err));
                      }
                    }}
                  >
                    {m.user_id === session!.user.id ? "Leave" : "Remove"}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      {isAdmin && (
        <>
          <h2>Invite someone</h2>
          <form onSubmit={createInvite} className="inline-form">
            <Field label="Email (optional)" type="email" value={inviteEmail} onChange={(e) => setInviteEmail(e.target.value)} />
            <Select label="Role" value={inviteRole} onChange={(e) => setInviteRole(e.target.value)}>
              <option value="member">member</option>
              <option value="admin">admin</option>
            </Select>
            <button type="submit">Create invite</button>
          </form>
          {invite && (
            <div className="secret" role="status">
              <p>
                Invite code (shown once, valid until {fmtTime(invite.expires_at)}, role {invite.role}):
              </p>
              <code data-testid="invite-code">{invite.code}</code>{" "}
              <button type="button" onClick={() => void navigator.clipboard?.writeText(invite.code)}>
                Copy invite code
              </button>
            </div>
          )}
        </>
      )}

      <h2>Accept an invite</h2>
      <form onSubmit={accept} className="inline-form">
        <Field label="Invite code" value={code} onChange={(e) => setCode(e.target.value)} required />
        <button type="submit">Accept invite</button>
      </form>

      <h2>Create a workspace</h2>
      <form onSubmit={createWs} className="inline-form">
        <Field label="Workspace name" value={newName} onChange={(e) => setNewName(e.target.value)} required />
        <button type="submit">Create workspace</button>
      </form>
    </section>
  );
}
