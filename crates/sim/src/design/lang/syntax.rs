//! Lexer and parser of design files: C-like text to an [`Item`] list. Names are not resolved here
//! (the loader does that); every node keeps its [`Pos`] for errors.

use super::Error;

/// A place in a file (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: u32,
    /// Column (in characters).
    pub col: u32,
}

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// Identifier or keyword.
    Ident(String),
    /// Integer literal.
    Int(i64),
    /// String literal (no escapes but `\"` and `\\`).
    Str(String),
    /// `#name` at the start of a line.
    Directive(String),
    /// Punctuation: `( ) { } ; , : ! = == != && || & | . *`.
    Punct(&'static str),
}

/// Limits that keep a hostile file from exhausting the loader.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Deepest nesting of blocks and expressions.
pub const MAX_NESTING: u32 = 64;

const PUNCTS: [&str; 17] = [
    "==", "!=", "&&", "||", "(", ")", "{", "}", ";", ",", ":", "!", "=", "&", "|", ".", "*",
];

/// Splits `src` into tokens with their positions.
pub fn lex(file: &str, src: &str) -> Result<Vec<(Tok, Pos)>, Error> {
    if src.len() > MAX_FILE_BYTES {
        return Err(Error::new(
            file,
            Pos { line: 1, col: 1 },
            format!(
                "file is {} bytes; a design file may have at most {MAX_FILE_BYTES}",
                src.len()
            ),
        ));
    }
    let chars: Vec<char> = src.chars().collect();
    // About one token per 4 characters of C.
    let mut out = Vec::with_capacity(chars.len() / 4);
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let mut line_start = true;
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
                line_start = true;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col };
        if c == '\n' {
            bump!();
            continue;
        }
        if c.is_whitespace() {
            bump!();
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(Error::new(file, pos, "unterminated /* comment".into()));
                }
                if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    bump!();
                    bump!();
                    break;
                }
                bump!();
            }
            continue;
        }
        let was_line_start = line_start;
        line_start = false;
        if c == '#' {
            if !was_line_start {
                return Err(Error::new(
                    file,
                    pos,
                    "`#` directives must start a line".into(),
                ));
            }
            bump!();
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                bump!();
            }
            let name: String = chars[s..i].iter().collect();
            if name.is_empty() {
                return Err(Error::new(
                    file,
                    pos,
                    "expected a directive name after `#`".into(),
                ));
            }
            out.push((Tok::Directive(name), pos));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                bump!();
            }
            let mut id = String::with_capacity(i - s);
            id.extend(&chars[s..i]);
            out.push((Tok::Ident(id), pos));
            continue;
        }
        if c.is_ascii_digit() {
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric()) {
                bump!();
            }
            let text: String = chars[s..i].iter().collect();
            let v = if let Some(h) = text.strip_prefix("0x") {
                i64::from_str_radix(h, 16).ok()
            } else {
                text.parse::<i64>().ok()
            };
            let Some(v) = v else {
                return Err(Error::new(file, pos, format!("bad number `{text}`")));
            };
            out.push((Tok::Int(v), pos));
            continue;
        }
        if c == '"' {
            bump!();
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None | Some('\n') => {
                        return Err(Error::new(file, pos, "unterminated string".into()));
                    }
                    Some('"') => {
                        bump!();
                        break;
                    }
                    Some('\\') if matches!(chars.get(i + 1), Some('"') | Some('\\')) => {
                        s.push(chars[i + 1]);
                        bump!();
                        bump!();
                    }
                    Some(&ch) => {
                        s.push(ch);
                        bump!();
                    }
                }
            }
            out.push((Tok::Str(s), pos));
            continue;
        }
        let next = chars.get(i + 1).copied();
        let matches = |p: &str| {
            let mut pc = p.chars();
            pc.next() == Some(c) && pc.next().is_none_or(|d| next == Some(d))
        };
        if let Some(p) = PUNCTS.iter().find(|p| matches(p)) {
            for _ in 0..p.len() {
                bump!();
            }
            out.push((Tok::Punct(p), pos));
            continue;
        }
        return Err(Error::new(file, pos, format!("unexpected character `{c}`")));
    }
    Ok(out)
}

/// A type of a variable, parameter or function result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `void`.
    Void,
    /// `bool`.
    Bool,
    /// `int`, `unsigned long` (flags), `unsigned int`.
    Int,
    /// `enum ctx_state`.
    CtxState,
    /// `irqentry_state_t` (a struct with `exit_rcu`).
    IrqState,
    /// `struct pt_regs *`: the entry's saved registers.
    Regs,
}

impl Ty {
    /// How C spells it.
    pub fn c_name(self) -> &'static str {
        match self {
            Ty::Void => "void",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::CtxState => "enum ctx_state",
            Ty::IrqState => "irqentry_state_t",
            Ty::Regs => "struct pt_regs *",
        }
    }
}

/// Binary operators of conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `&&`.
    And,
    /// `||`.
    Or,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `&`.
    BitAnd,
    /// `|`.
    BitOr,
}

/// An expression (a condition, an argument or a value).
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A call.
    Call(Call),
    /// A variable, a constant or `regs`/`current`.
    Name(String, Pos),
    /// `var.field`.
    Field(String, String, Pos),
    /// A number.
    Int(i64, Pos),
    /// `!e`.
    Not(Box<Expr>, Pos),
    /// `a op b`.
    Bin(BinOp, Box<Expr>, Box<Expr>, Pos),
}

impl Expr {
    /// Where it starts.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Call(c) => c.pos,
            Expr::Name(_, p) | Expr::Field(_, _, p) | Expr::Int(_, p) | Expr::Not(_, p) => *p,
            Expr::Bin(_, _, _, p) => *p,
        }
    }
}

/// `name(args)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Callee.
    pub name: String,
    /// Where the name is.
    pub pos: Pos,
    /// Arguments.
    pub args: Vec<Expr>,
}

/// Where an assignment writes.
#[derive(Clone, Debug, PartialEq)]
pub enum LValue {
    /// `x = ...`.
    Var(String, Pos),
    /// `x.field = ...`.
    Field(String, String, Pos),
}

/// One item of a comma-separated statement: `call(...)` or `lvalue = expr`.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A call whose result, if any, is discarded.
    Call(Call),
    /// An assignment.
    Assign(LValue, Expr),
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `[label:] item, item, ...;` — at most one step (the loader decides).
    Simple {
        /// The step's name when given (`label: ...`).
        label: Option<String>,
        /// The items in order.
        items: Vec<Item>,
        /// The statement's text, for the step's name when no label is given.
        text: String,
        /// Where it starts.
        pos: Pos,
    },
    /// `type name [= expr];`.
    Decl {
        /// Type.
        ty: Ty,
        /// Name.
        name: String,
        /// Initial value.
        init: Option<Expr>,
        /// Where.
        pos: Pos,
    },
    /// `if (cond) ... [else ...]`.
    If {
        /// Condition.
        cond: Expr,
        /// Then branch.
        then: Vec<Stmt>,
        /// Else branch.
        els: Vec<Stmt>,
        /// The condition's text (names the decision).
        text: String,
        /// Where.
        pos: Pos,
    },
    /// `do ... while (cond);`.
    DoWhile {
        /// Body.
        body: Vec<Stmt>,
        /// Condition.
        cond: Expr,
        /// The condition's text.
        text: String,
        /// Where.
        pos: Pos,
    },
    /// `while (cond) ...`.
    While {
        /// Condition.
        cond: Expr,
        /// Body.
        body: Vec<Stmt>,
        /// The condition's text.
        text: String,
        /// Where.
        pos: Pos,
    },
    /// `return [expr];`.
    Return {
        /// Value.
        value: Option<Expr>,
        /// Where.
        pos: Pos,
    },
    /// `instrumentation_begin();`.
    InstrBegin(Pos),
    /// `instrumentation_end();`.
    InstrEnd(Pos),
}

/// A function of the design.
#[derive(Clone, Debug, PartialEq)]
pub struct Func {
    /// Name.
    pub name: String,
    /// Where the name is.
    pub pos: Pos,
    /// Marked `noinstr`.
    pub noinstr: bool,
    /// Marked `inline` or `__always_inline`: its body is inlined into its callers.
    pub inline: bool,
    /// Result type.
    pub ret: Ty,
    /// Parameters.
    pub params: Vec<(Ty, String, Pos)>,
    /// Body.
    pub body: Vec<Stmt>,
    /// The file it comes from (for errors in included files).
    pub file: String,
}

/// A `#` directive.
#[derive(Clone, Debug, PartialEq)]
pub struct Directive {
    /// Name (`design`, `summary`, `entry`, `include`, `era`).
    pub name: String,
    /// Its words and strings.
    pub args: Vec<(Tok, Pos)>,
    /// Where.
    pub pos: Pos,
}

/// A parsed file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ast {
    /// Directives in order.
    pub directives: Vec<Directive>,
    /// Functions in order.
    pub funcs: Vec<Func>,
}

/// Parses one file.
pub fn parse(file: &str, src: &str) -> Result<Ast, Error> {
    let toks = lex(file, src)?;
    let mut p = Parser {
        file,
        src,
        toks,
        i: 0,
        depth: 0,
    };
    p.file_items()
}

struct Parser<'a> {
    file: &'a str,
    src: &'a str,
    toks: Vec<(Tok, Pos)>,
    i: usize,
    depth: u32,
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the file".into(),
        Some(Tok::Ident(s)) => format!("`{s}`"),
        Some(Tok::Int(v)) => format!("`{v}`"),
        Some(Tok::Str(s)) => format!("\"{s}\""),
        Some(Tok::Directive(s)) => format!("`#{s}`"),
        Some(Tok::Punct(p)) => format!("`{p}`"),
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.i + k).map(|t| &t.0)
    }
    fn pos(&self) -> Pos {
        self.toks.get(self.i).map_or_else(
            || {
                let line = self.src.lines().count().max(1) as u32;
                Pos { line, col: 1 }
            },
            |t| t.1,
        )
    }
    fn err<T>(&self, msg: String) -> Result<T, Error> {
        Err(Error::new(self.file, self.pos(), msg))
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(q)) if q == s)
    }
    fn expect(&mut self, p: &str) -> Result<Pos, Error> {
        if self.is_punct(p) {
            let pos = self.pos();
            self.i += 1;
            Ok(pos)
        } else {
            self.err(format!("expected `{p}`, found {}", describe(self.peek())))
        }
    }
    fn ident(&mut self, what: &str) -> Result<(String, Pos), Error> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let r = (s.clone(), self.pos());
                self.i += 1;
                Ok(r)
            }
            other => self.err(format!("expected {what}, found {}", describe(other))),
        }
    }
    fn nest(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(format!("nesting deeper than {MAX_NESTING} levels"));
        }
        Ok(())
    }
    /// Source text between two token indices (for step and decision names).
    fn text(&self, from: usize, to: usize) -> String {
        let mut s = String::new();
        for (k, (t, _)) in self.toks[from..to].iter().enumerate() {
            let piece = match t {
                Tok::Ident(x) => x.clone(),
                Tok::Int(v) => v.to_string(),
                Tok::Str(x) => format!("\"{x}\""),
                Tok::Directive(x) => format!("#{x}"),
                Tok::Punct(p) => p.to_string(),
            };
            let prev = k.checked_sub(1).map(|j| &self.toks[from + j].0);
            let glue = matches!(t, Tok::Punct("(" | ")" | "," | "." | ";"))
                || matches!(prev, Some(Tok::Punct("(" | "." | "!")))
                || prev.is_none();
            let glue = glue && !matches!(t, Tok::Punct("==" | "!=" | "&&" | "||" | "&" | "|"));
            if (!glue
                || matches!(
                    prev,
                    Some(Tok::Punct("," | "==" | "!=" | "&&" | "||" | "&" | "|"))
                ))
                && !s.is_empty()
            {
                s.push(' ');
            }
            s.push_str(&piece);
        }
        s
    }

    fn file_items(&mut self) -> Result<Ast, Error> {
        let mut ast = Ast::default();
        while let Some(t) = self.peek().cloned() {
            match t {
                Tok::Directive(name) => {
                    let pos = self.pos();
                    let line = pos.line;
                    self.i += 1;
                    let mut args = Vec::new();
                    while let Some((t, p)) = self.toks.get(self.i) {
                        if p.line != line {
                            break;
                        }
                        args.push((t.clone(), *p));
                        self.i += 1;
                    }
                    ast.directives.push(Directive { name, args, pos });
                }
                _ => ast.funcs.push(self.func()?),
            }
        }
        Ok(ast)
    }

    fn ty(&mut self) -> Result<Option<Ty>, Error> {
        let t = match self.peek() {
            Some(Tok::Ident(s)) => s.as_str(),
            _ => return Ok(None),
        };
        let ty = match t {
            "void" => Ty::Void,
            "bool" => Ty::Bool,
            "int" => Ty::Int,
            "irqentry_state_t" => Ty::IrqState,
            "unsigned" => {
                self.i += 1;
                if self.is_ident("long") || self.is_ident("int") {
                    self.i += 1;
                    return Ok(Some(Ty::Int));
                }
                return self.err("expected `long` or `int` after `unsigned`".into());
            }
            "enum" => {
                self.i += 1;
                if !self.is_ident("ctx_state") {
                    return self
                        .err("expected `ctx_state` after `enum` (the only enum type)".into());
                }
                self.i += 1;
                return Ok(Some(Ty::CtxState));
            }
            "struct" => {
                self.i += 1;
                if !self.is_ident("pt_regs") {
                    return self.err(
                        "expected `pt_regs` after `struct` (the only struct passed by pointer)"
                            .into(),
                    );
                }
                self.i += 1;
                self.expect("*")?;
                return Ok(Some(Ty::Regs));
            }
            _ => return Ok(None),
        };
        self.i += 1;
        Ok(Some(ty))
    }

    fn func(&mut self) -> Result<Func, Error> {
        let mut noinstr = false;
        let mut inline = false;
        loop {
            if self.is_ident("__always_inline") || self.is_ident("inline") {
                inline = true;
                self.i += 1;
            } else if self.is_ident("static") || self.is_ident("__visible") {
                self.i += 1;
            } else if self.is_ident("noinstr") {
                noinstr = true;
                self.i += 1;
            } else {
                break;
            }
        }
        let Some(ret) = self.ty()? else {
            return self.err(format!(
                "expected a function (`[static] [noinstr] void name(...) {{ ... }}`) or a `#` directive, found {}",
                describe(self.peek())
            ));
        };
        if ret == Ty::Regs {
            return self.err("a function cannot return `struct pt_regs *`".into());
        }
        // `noinstr` may also follow the type (`void noinstr foo(void)`), as in some kernel code.
        if self.is_ident("noinstr") {
            noinstr = true;
            self.i += 1;
        }
        let (name, pos) = self.ident("a function name")?;
        self.expect("(")?;
        let mut params = Vec::new();
        if self.is_ident("void") && matches!(self.peek_at(1), Some(Tok::Punct(")"))) {
            self.i += 1;
        } else if !self.is_punct(")") {
            loop {
                let Some(ty) = self.ty()? else {
                    return self.err(format!(
                        "expected a parameter type, found {}",
                        describe(self.peek())
                    ));
                };
                let (pname, ppos) = self.ident("a parameter name")?;
                params.push((ty, pname, ppos));
                if self.is_punct(",") {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        let body = self.block()?;
        Ok(Func {
            name,
            pos,
            noinstr,
            inline,
            ret,
            params,
            body,
            file: self.file.to_string(),
        })
    }

    fn block(&mut self) -> Result<Vec<Stmt>, Error> {
        self.expect("{")?;
        self.nest()?;
        let mut v = Vec::new();
        while !self.is_punct("}") {
            if self.peek().is_none() {
                return self.err("expected `}` before the end of the file".into());
            }
            v.push(self.stmt()?);
        }
        self.i += 1;
        self.depth -= 1;
        Ok(v)
    }

    /// A statement or a block, as the body of `if`/`else`/`while`.
    fn body(&mut self) -> Result<Vec<Stmt>, Error> {
        if self.is_punct("{") {
            self.block()
        } else {
            self.nest()?;
            let s = self.stmt()?;
            self.depth -= 1;
            Ok(vec![s])
        }
    }

    fn stmt(&mut self) -> Result<Stmt, Error> {
        let pos = self.pos();
        if self.is_ident("if") {
            self.i += 1;
            let (cond, text) = self.paren_cond()?;
            let then = self.body()?;
            let els = if self.is_ident("else") {
                self.i += 1;
                self.body()?
            } else {
                Vec::new()
            };
            return Ok(Stmt::If {
                cond,
                then,
                els,
                text,
                pos,
            });
        }
        if self.is_ident("while") {
            self.i += 1;
            let (cond, text) = self.paren_cond()?;
            let body = self.body()?;
            return Ok(Stmt::While {
                cond,
                body,
                text,
                pos,
            });
        }
        if self.is_ident("do") {
            self.i += 1;
            let body = self.body()?;
            if !self.is_ident("while") {
                return self.err(format!(
                    "expected `while (...)` after the body of `do`, found {}",
                    describe(self.peek())
                ));
            }
            self.i += 1;
            let (cond, text) = self.paren_cond()?;
            self.expect(";")?;
            return Ok(Stmt::DoWhile {
                body,
                cond,
                text,
                pos,
            });
        }
        if self.is_ident("return") {
            self.i += 1;
            let value = if self.is_punct(";") {
                None
            } else {
                Some(self.expr()?)
            };
            self.expect(";")?;
            return Ok(Stmt::Return { value, pos });
        }
        if self.is_ident("else") {
            return self.err("`else` without `if`".into());
        }
        for (kw, begin) in [
            ("instrumentation_begin", true),
            ("instrumentation_end", false),
        ] {
            if self.is_ident(kw) && matches!(self.peek_at(1), Some(Tok::Punct("("))) {
                self.i += 1;
                self.expect("(")?;
                self.expect(")")?;
                self.expect(";")?;
                return Ok(if begin {
                    Stmt::InstrBegin(pos)
                } else {
                    Stmt::InstrEnd(pos)
                });
            }
        }
        let save = self.i;
        if let Some(ty) = self.ty()? {
            if ty == Ty::Void || ty == Ty::Regs {
                self.i = save;
                return self.err(format!("a variable cannot be of type `{}`", ty.c_name()));
            }
            let (name, _) = self.ident("a variable name")?;
            let init = if self.is_punct("=") {
                self.i += 1;
                if self.is_punct("{") {
                    // `irqentry_state_t ret = { .exit_rcu = false };` → all fields zero/false.
                    self.struct_init()?;
                    None
                } else {
                    Some(self.expr()?)
                }
            } else {
                None
            };
            self.expect(";")?;
            return Ok(Stmt::Decl {
                ty,
                name,
                init,
                pos,
            });
        }
        // `label: statement` (a step's name).
        let mut label = None;
        if let (Some(Tok::Ident(l)), Some(Tok::Punct(":"))) = (self.peek(), self.peek_at(1)) {
            label = Some(l.clone());
            self.i += 2;
        }
        let from = self.i;
        let mut items = Vec::new();
        loop {
            items.push(self.item()?);
            if self.is_punct(",") {
                self.i += 1;
            } else {
                break;
            }
        }
        let text = self.text(from, self.i);
        self.expect(";")?;
        Ok(Stmt::Simple {
            label,
            items,
            text,
            pos,
        })
    }

    /// `( expr )`: a condition and its text (which names the decision).
    fn paren_cond(&mut self) -> Result<(Expr, String), Error> {
        self.expect("(")?;
        let from = self.i;
        let cond = self.expr()?;
        let text = self.text(from, self.i);
        self.expect(")")?;
        Ok((cond, text))
    }

    fn struct_init(&mut self) -> Result<(), Error> {
        self.expect("{")?;
        while !self.is_punct("}") {
            self.expect(".")?;
            self.ident("a field name")?;
            self.expect("=")?;
            match self.peek() {
                Some(Tok::Ident(v)) if v == "false" || v == "0" => self.i += 1,
                Some(Tok::Int(0)) => self.i += 1,
                _ => {
                    return self.err(
                        "a struct initializer may only zero its fields (`.exit_rcu = false`)"
                            .into(),
                    )
                }
            }
            if self.is_punct(",") {
                self.i += 1;
            }
        }
        self.i += 1;
        Ok(())
    }

    fn item(&mut self) -> Result<Item, Error> {
        let pos = self.pos();
        let (name, _) = self.ident("a statement (a call or an assignment)")?;
        if self.is_punct("(") {
            return Ok(Item::Call(self.call_rest(name, pos)?));
        }
        let lv = if self.is_punct(".") {
            self.i += 1;
            let (f, _) = self.ident("a field name")?;
            LValue::Field(name, f, pos)
        } else {
            LValue::Var(name, pos)
        };
        if !self.is_punct("=") {
            return self.err(format!(
                "expected `(` or `=` after `{}`, found {}",
                match &lv {
                    LValue::Var(n, _) | LValue::Field(n, _, _) => n,
                },
                describe(self.peek())
            ));
        }
        self.i += 1;
        let e = self.expr()?;
        Ok(Item::Assign(lv, e))
    }

    fn call_rest(&mut self, name: String, pos: Pos) -> Result<Call, Error> {
        self.expect("(")?;
        self.nest()?;
        let mut args = Vec::new();
        if !self.is_punct(")") {
            loop {
                args.push(self.expr()?);
                if self.is_punct(",") {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        self.depth -= 1;
        Ok(Call { name, pos, args })
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        self.nest()?;
        let r = self.binary(0);
        self.depth -= 1;
        r
    }

    fn binary(&mut self, level: u8) -> Result<Expr, Error> {
        // Lowest first: ||, &&, |, &, == !=.
        const LEVELS: [&[(&str, BinOp)]; 5] = [
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("|", BinOp::BitOr)],
            &[("&", BinOp::BitAnd)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
        ];
        if level as usize == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            let Some(&(_, op)) = LEVELS[level as usize]
                .iter()
                .find(|(p, _)| self.is_punct(p))
            else {
                return Ok(lhs);
            };
            let pos = self.pos();
            self.i += 1;
            let rhs = self.binary(level + 1)?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), pos);
        }
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        let pos = self.pos();
        match self.peek().cloned() {
            Some(Tok::Punct("!")) => {
                self.i += 1;
                self.nest()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(e), pos))
            }
            Some(Tok::Punct("(")) => {
                self.i += 1;
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Tok::Int(v)) => {
                self.i += 1;
                Ok(Expr::Int(v, pos))
            }
            Some(Tok::Ident(name)) => {
                self.i += 1;
                if self.is_punct("(") {
                    return Ok(Expr::Call(self.call_rest(name, pos)?));
                }
                if self.is_punct(".") {
                    self.i += 1;
                    let (f, _) = self.ident("a field name")?;
                    return Ok(Expr::Field(name, f, pos));
                }
                Ok(Expr::Name(name, pos))
            }
            other => self.err(format!(
                "expected an expression, found {}",
                describe(other.as_ref())
            )),
        }
    }
}
