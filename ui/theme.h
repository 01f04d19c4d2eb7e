#pragma once
// Light and dark looks. "system" follows the platform palette (Qt 6.4 has no colour-scheme API, so
// a dark window colour means a dark system theme).

#include <QString>

namespace quire::ui {

enum class Theme { system, light, dark };
void applyTheme(Theme theme);
Theme themeFromName(const QString& name);
QString themeName(Theme theme);
bool isDarkTheme();

}  // namespace quire::ui
