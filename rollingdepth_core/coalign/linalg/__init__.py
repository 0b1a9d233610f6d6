"""Linear algebra of the Newton co-alignment solvers: block-tridiagonal systems in time
(`block_tridiagonal`), their factorisation through separators (`separator`) and inexact
solves by preconditioned GMRES (`krylov`)."""
