#include "theme.h"

#include <QApplication>
#include <QPalette>
#include <QStyle>
#include <QStyleFactory>

namespace quire::ui {

namespace {
QPalette darkPalette() {
    QPalette p;
    const QColor window(0x20, 0x22, 0x27), base(0x17, 0x19, 0x1d), text(0xe6, 0xe6, 0xe6), accent(0x4c, 0x8d, 0xf6);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, QColor(0x2b, 0x2e, 0x35));
    p.setColor(QPalette::ToolTipBase, window);
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::Button, QColor(0x2d, 0x30, 0x37));
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::Highlight, accent);
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::Link, accent.lighter(120));
    p.setColor(QPalette::PlaceholderText, QColor(0x8a, 0x8f, 0x98));
    p.setColor(QPalette::Disabled, QPalette::Text, QColor(0x70, 0x70, 0x70));
    p.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(0x70, 0x70, 0x70));
    return p;
}
QPalette lightPalette() {
    QPalette p = QStyleFactory::create("Fusion")->standardPalette();
    p.setColor(QPalette::Window, QColor(0xf6, 0xf7, 0xf9));
    p.setColor(QPalette::AlternateBase, QColor(0xe9, 0xec, 0xf1));
    p.setColor(QPalette::Highlight, QColor(0x2f, 0x6f, 0xdc));
    return p;
}
bool dark_ = false;
}  // namespace

void applyTheme(Theme theme) {
    QApplication::setStyle(QStyleFactory::create("Fusion"));
    bool dark = theme == Theme::dark;
    if (theme == Theme::system) dark = QApplication::style()->standardPalette().color(QPalette::Window).lightness() < 128 ||
                                        qEnvironmentVariable("QUIRE_THEME") == "dark";
    dark_ = dark;
    QApplication::setPalette(dark ? darkPalette() : lightPalette());
}

Theme themeFromName(const QString& name) {
    if (name == "light") return Theme::light;
    if (name == "dark") return Theme::dark;
    return Theme::system;
}

QString themeName(Theme theme) { return theme == Theme::light ? "light" : theme == Theme::dark ? "dark" : "system"; }
bool isDarkTheme() { return dark_; }

}  // namespace quire::ui
