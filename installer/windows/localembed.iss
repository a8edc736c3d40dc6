; Inno Setup script: a per-user installer (no administrator rights) for the PyInstaller build.
; Build dist\localembed first (pyinstaller installer\localembed.spec), then compile this with
; Inno Setup 6: iscc installer\windows\localembed.iss
#define AppVersion "0.1.0"

[Setup]
AppId={{6F1C2B1E-3C1D-4B8E-9E5A-1F0C6B2D7A11}
AppName=localembed
AppVersion={#AppVersion}
AppPublisher=localembed
DefaultDirName={localappdata}\Programs\localembed
DefaultGroupName=localembed
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=localembed-{#AppVersion}-setup
SetupIconFile=..\icons\localembed.ico
UninstallDisplayIcon={app}\localembed.exe
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[Files]
Source: "..\..\dist\localembed\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{userprograms}\localembed"; Filename: "{app}\localembed.exe"; Parameters: "app"
Name: "{userdesktop}\localembed"; Filename: "{app}\localembed.exe"; Parameters: "app"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\localembed.exe"; Parameters: "app"; Description: "Start localembed"; Flags: nowait postinstall skipifsilent
