// Session state of the app: restores the session from the refresh cookie at start, exposes the
// current user/workspace and the sign-in/up/out and workspace-switch actions.
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { api, type Session } from "./api/client";

interface AuthState {
  session: Session | null;
  loading: boolean;
  signIn(email: string, password: string, workspaceId?: string): Promise<void>;
  signUp(email: string, password: string, name: string, invite?: string): Promise<void>;
  signOut(): Promise<void>;
}

const Ctx = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(null);
  const [loading, setLoading] = useState(true);
  useEffect(() => {
    api.onSession = setSession;
    void api.refresh().finally(() => setLoading(false));
  }, []);
  const value: AuthState = {
    session,
    loading,
    signIn: async (e, p, w) => {
      await api.login(e, p, w);
    },
    signUp: async (e, p, n, i) => {
      await api.register(e, p, n, i);
    },
    signOut: () => api.logout(),
  };
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useAuth(): AuthState {
  const v = useContext(Ctx);
  if (!v) throw new Error("useAuth outside AuthProvider");
  return v;
}
