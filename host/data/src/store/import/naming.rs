//! Column names from what files call their columns: a CSV header or a JSON
//! key that is an identifier names its column as it is; any other one is
//! made an identifier ([`column_name`]), so exports with `First Name` or
//! `E-mail` load as they are. Configuration naming a column either way is
//! read through the same function, so both spellings name one column.

use std::borrow::Cow;
use std::collections::HashMap;

use super::quoted;
use crate::store::valid_identifier;

/// The column `header` names: `header` itself when it is an identifier;
/// otherwise its Latin letters folded to ASCII (`é` → `e`), then its runs
/// of ASCII letters and digits joined, each starting upper-case (`First
/// Name` → `FirstName`, `e-mail` → `EMail`, `Code postal` → `CodePostal`),
/// with `_` before a leading digit (`2nd Phone` → `_2ndPhone`). `None` when
/// no letter or digit is left, or more than 64 characters.
pub fn column_name(header: &str) -> Option<Cow<'_, str>> {
    if valid_identifier(header) {
        return Some(Cow::Borrowed(header));
    }
    let mut folded = String::with_capacity(header.len());
    header
        .chars()
        .for_each(|c| crate::text::fold_latin(c, &mut folded));
    let mut name = crate::text::pascal_case(&folded);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    valid_identifier(&name).then_some(Cow::Owned(name))
}

/// The column a configuration or a flag names by `column`: its name, or
/// `column` as written when it names none (the import then says it is not
/// in the file).
pub fn named_column(column: &str) -> String {
    column_name(column).map_or_else(|| column.to_owned(), Cow::into_owned)
}

/// The error for the `n`th column (from 1), named `header`, when
/// [`column_name`] finds no name in it.
pub(super) fn unnamable(n: usize, header: &str) -> String {
    format!(
        "column {n} is named {}: a column name needs an ASCII letter or digit, and at most 64 of them",
        quoted(header)
    )
}

/// The names of a CSV file's columns, from its `headers` (trimmed): each
/// header's [`column_name`], and `Column{n}` for the `n`th when blank (as
/// spreadsheet tools name them). Two headers that name one column are
/// refused, as are names that differ only in case (SQLite's column names
/// ignore case).
pub(super) fn csv_columns(headers: &[String]) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let name = match h.as_str() {
            "" => format!("Column{}", i + 1),
            h => column_name(h)
                .ok_or_else(|| unnamable(i + 1, h))?
                .into_owned(),
        };
        names.push(name);
    }
    distinct(headers, &names)?;
    Ok(names)
}

/// Refuse two columns whose `names` are equal but for case; `headers` are
/// what the file calls them (the same as `names` for JSON keys, which are
/// named as they are read).
pub(super) fn distinct(headers: &[String], names: &[String]) -> Result<(), String> {
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let Some(&j) = seen.get(&name.to_ascii_lowercase()) else {
            seen.insert(name.to_ascii_lowercase(), i);
            continue;
        };
        let (a, b) = (&headers[j], &headers[i]);
        return Err(if a == b {
            format!("column {} appears twice", quoted(a))
        } else if names[j] == *name {
            format!(
                "columns {} and {} both name the column {}",
                quoted(a),
                quoted(b),
                quoted(name)
            )
        } else if (a, b) == (&names[j], name) {
            format!(
                "columns {} and {} differ only in case (column names ignore case)",
                quoted(a),
                quoted(b)
            )
        } else {
            format!(
                "columns {} and {} name the columns {} and {}, which differ only in case (column names ignore case)",
                quoted(a),
                quoted(b),
                quoted(&names[j]),
                quoted(name)
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_are_not_identifiers_are_made_ones() {
        for (header, name) in [
            ("ContactId", "ContactId"),
            ("first_name", "first_name"),
            ("First Name", "FirstName"),
            ("Contact ID", "ContactID"),
            ("e-mail", "EMail"),
            ("Code postal", "CodePostal"),
            ("Prénom", "Prenom"),
            ("Straße", "Strasse"),
            ("2nd Phone", "_2ndPhone"),
            ("Phone (mobile)", "PhoneMobile"),
            ("first_name (old)", "FirstNameOld"),
        ] {
            assert_eq!(column_name(header).as_deref(), Some(name), "{header}");
        }
        for header in ["", "---", "名前", &"ab ".repeat(40)] {
            assert_eq!(column_name(header), None, "{header}");
        }
    }

    #[test]
    fn csv_headers_are_named_and_clashes_refused() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            csv_columns(&owned(&["Contact ID", "", "E-mail"])),
            Ok(owned(&["ContactID", "Column2", "EMail"]))
        );
        for (headers, message) in [
            (&["Id", "Email", "Email"][..], "column 'Email' appears twice"),
            (
                &["Id", "First Name", "FirstName"],
                "columns 'First Name' and 'FirstName' both name the column 'FirstName'",
            ),
            (
                &["Id", "Email", "email"],
                "columns 'Email' and 'email' differ only in case (column names ignore case)",
            ),
            (
                &["Id", "Email", "E-mail"],
                "columns 'Email' and 'E-mail' name the columns 'Email' and 'EMail', which differ only in case (column names ignore case)",
            ),
            (
                &["Id", "", "Column2"],
                "columns '' and 'Column2' both name the column 'Column2'",
            ),
            (
                &["Id", "名前"],
                "column 2 is named '名前': a column name needs an ASCII letter or digit, and at most 64 of them",
            ),
        ] {
            assert_eq!(csv_columns(&owned(headers)), Err(message.to_owned()));
        }
    }
}
